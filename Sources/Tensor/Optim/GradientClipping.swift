import CKernels

/// Scales the gradients of `parameters` so that their global L2 norm is at most
/// `maxNorm` (as torch.nn.utils.clip_grad_norm_). Returns the norm before clipping.
@discardableResult
public func clipGradNorm(_ parameters: [Tensor], maxNorm: Float) -> Float {
    let grads = parameters.compactMap(\.grad)
    let total = grads.map { sumOfSquares($0) }.reduce(0, +).squareRoot()
    let coefficient = Double(maxNorm) / (total + 1e-6)
    if coefficient < 1 {
        for g in grads { g.scaleInPlace(Float(coefficient)) }
    }
    return Float(total)
}

private func sumOfSquares(_ x: Tensor) -> Double {
    duo_sum_squared_deviations(x.pointer, x.count, 0)
}
