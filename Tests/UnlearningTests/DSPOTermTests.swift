import Foundation
import Tensor
import XCTest

@testable import Unlearning

/// DSPO's objective (`DSPOTerm` inside `DUOLoss.objective`) against a Float64 evaluation of
/// its formula, written here from the paper and its code: the value, and the gradient by
/// central differences of that Float64 evaluation.
final class DSPOTermTests: XCTestCase {
    /// The loss in Float64: trained/ref are [unsafe, safe, prior] flattened [B * n], targets
    /// [unsafe, safe]; the reward margin is scaled by β/2 (DSPO's code).
    static func formula(
        _ trained: [[Double]], _ ref: [[Double]], _ targets: [[Double]], b: Int, beta: Double,
        lambda: Double
    ) -> Double {
        let n = trained[0].count / b
        func mse(_ x: [Double], _ y: [Double], _ i: Int) -> Double {
            (0..<n).reduce(0) { $0 + pow(x[i * n + $1] - y[i * n + $1], 2) } / Double(n)
        }
        var loss = 0.0
        for i in 0..<b {
            // r = −(‖εθ − ε‖² − ‖εref − ε‖²) per image; σ of β/2 (r_w − r_l).
            let rewardSafe = -(mse(trained[1], targets[1], i) - mse(ref[1], targets[1], i))
            let rewardUnsafe = -(mse(trained[0], targets[0], i) - mse(ref[0], targets[0], i))
            let sigma = 1 / (1 + exp(-beta / 2 * (rewardSafe - rewardUnsafe)))
            for j in 0..<n {
                let k = i * n + j
                let residual =
                    trained[1][k] - targets[1][k] - beta * (1 - sigma) * (trained[1][k] - ref[1][k])
                loss += residual * residual / Double(n * b)
            }
        }
        let count = Double(trained[2].count)
        return loss + lambda * zip(trained[2], ref[2]).reduce(0) { $0 + pow($1.0 - $1.1, 2) }
            / count
    }

    func testObjectiveAndGradientMatchAFloat64EvaluationOfTheFormula() {
        let (b, shape) = (3, [3, 2, 3, 3])
        let key = RandomKey(seed: 41)
        let trained = (0..<3).map {
            Tensor.randn(shape, key: key.fold(in: UInt64($0)), requiresGrad: true)
        }
        // The reference near the trained model, as in training, and targets that the safe
        // side fits better on some pairs and worse on others.
        let ref = (0..<3).map {
            trained[$0].detached() + Tensor.randn(shape, key: key.fold(in: UInt64(10 + $0))) * 0.3
        }
        let targets = (0..<2).map { Tensor.randn(shape, key: key.fold(in: UInt64(20 + $0))) }
        // β large enough that the move-away weight β (1 − σ) and σ's slope both matter.
        let (beta, lambda): (Float, Float) = (1.6, 2.5)
        let terms = DUOLoss.objective(
            trained: (trained[0], trained[1], trained[2]), reference: (ref[0], ref[1], ref[2]),
            targets: (targets[0], targets[1]), beta: beta, lambda: lambda,
            convention: .diffusionDPO, preference: .dspo)
        terms.loss.backward()

        let t = trained.map { $0.scalars.map(Double.init) }
        let r = ref.map { $0.scalars.map(Double.init) }
        let y = targets.map { $0.scalars.map(Double.init) }
        func loss(_ t: [[Double]]) -> Double {
            Self.formula(t, r, y, b: b, beta: Double(beta), lambda: Double(lambda))
        }
        let expected = loss(t)
        XCTAssertEqual(Double(terms.loss.item), expected, accuracy: 1e-5 * max(1, abs(expected)))
        for input in 0..<3 {
            let got = trained[input].grad!.scalars
            var want = [Double](repeating: 0, count: got.count)
            for k in want.indices {
                var plus = t, minus = t
                plus[input][k] += 1e-6
                minus[input][k] -= 1e-6
                want[k] = (loss(plus) - loss(minus)) / 2e-6
            }
            let scale = want.map(abs).max()!
            XCTAssertGreaterThan(scale, 1e-3, "input \(input): a gradient that could be wrong")
            for (g, w) in zip(got, want) {
                XCTAssertEqual(Double(g), w, accuracy: 2e-5 * scale, "input \(input)")
            }
        }
    }

    /// The unsafe image enters DSPO only through σ: with β = 0 its gradient is zero and the
    /// term is the safe image's plain denoising error.
    func testAtBetaZeroTheTermIsTheSafeImagesDenoisingError() {
        let shape = [2, 1, 2, 2]
        let key = RandomKey(seed: 42)
        let trained = (0..<3).map {
            Tensor.randn(shape, key: key.fold(in: UInt64($0)), requiresGrad: true)
        }
        let ref = (0..<3).map { Tensor.randn(shape, key: key.fold(in: UInt64(10 + $0))) }
        let target = Tensor.randn(shape, key: key.fold(in: 20))
        let terms = DUOLoss.objective(
            trained: (trained[0], trained[1], trained[2]), reference: (ref[0], ref[1], ref[2]),
            targets: (target, target), beta: 0, lambda: 0, convention: .diffusionDPO,
            preference: .dspo)
        terms.loss.backward()
        let difference = zip(trained[1].scalars, target.scalars).map { $0 - $1 }
        let mse = difference.map { $0 * $0 }.reduce(0, +) / Float(difference.count)
        XCTAssertEqual(terms.preference, mse, accuracy: 1e-6 * max(1, mse))
        XCTAssertEqual(trained[0].grad?.scalars.map(abs).max() ?? 0, 0)
    }
}
