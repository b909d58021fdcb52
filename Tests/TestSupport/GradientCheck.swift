import Tensor
import XCTest

/// Checks the gradients autodiff computes for `f` against central finite differences.
///
/// The scalar is L = sum_i y_i w_i with fixed random weights w, so every output element
/// matters. Each element x_j of each input in `checked` is perturbed by +-eps and
/// dL/dx_j ~ (L(x + eps) - L(x - eps)) / 2 eps, with L accumulated in Double.
///
/// Tolerance: the ops run in Float32, so L carries a rounding error of about
/// 1e-7 * sum |y_i w_i|; divided by 2 eps = 2e-2 that is ~5e-6 per unit of output mass,
/// and the truncation error of the central difference is O(eps^2 f''') ~ 1e-4 for the
/// smooth, O(1)-scaled functions tested. A gradient passes when
/// |analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|).
public func checkGradients(
    _ inputs: [Tensor], checked: [Int]? = nil, eps: Float = 1e-2, rtol: Float = 2e-2,
    atol: Float = 2e-3, _ name: String, file: StaticString = #filePath, line: UInt = #line,
    _ f: ([Tensor]) -> Tensor
) {
    let checked = checked ?? Array(inputs.indices)
    for (i, x) in inputs.enumerated() { x.requiresGrad = checked.contains(i); x.zeroGrad() }
    let y = f(inputs)
    let weights = Tensor.randn(y.shape, key: RandomKey(seed: 0xC0FFEE))
    y.backward(weights)
    let w = weights.scalars
    func loss() -> Double {
        GradMode.withNoGrad {
            zip(f(inputs).scalars, w).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
    }
    for i in checked {
        let x = inputs[i]
        guard let analytic = x.grad?.scalars else {
            XCTFail("\(name): input \(i) got no gradient", file: file, line: line)
            continue
        }
        for j in 0..<x.count {
            let original = x.scalars[j]
            x.withUnsafeMutableBufferPointer { $0[j] = original + eps }
            let plus = loss()
            x.withUnsafeMutableBufferPointer { $0[j] = original - eps }
            let minus = loss()
            x.withUnsafeMutableBufferPointer { $0[j] = original }
            let numeric = Float((plus - minus) / Double(2 * eps))
            let tolerance = atol + rtol * max(abs(numeric), abs(analytic[j]))
            if !(abs(numeric - analytic[j]) <= tolerance) {
                XCTFail(
                    "\(name): d/dinput\(i)[\(j)] autodiff \(analytic[j]) vs finite difference \(numeric)",
                    file: file, line: line)
                return
            }
        }
    }
}

/// A random tensor from a named stream, for test inputs.
public func randomTensor(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
    Tensor.randn(shape, key: RandomKey(seed: seed)) * scale
}
