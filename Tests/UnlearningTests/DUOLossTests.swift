import Foundation
import Tensor
import XCTest

@testable import Unlearning

/// DUO's objective against a direct Float64 evaluation of its formula, value and gradient.
final class DUOLossTests: XCTestCase {
    /// −log σ(z) and its derivative −σ(−z), in Float64.
    func reference(
        _ trained: [[Double]], _ ref: [[Double]], _ targets: [[Double]], b: Int, beta: Double,
        lambda: Double,
        factor: Double
    ) -> (loss: Double, gradient: [[Double]]) {
        // trained/ref: [unsafe, safe, prior] flattened [B * n]; targets: [unsafe, safe].
        let n = trained[0].count / b
        func mse(_ x: [Double], _ y: [Double], _ i: Int) -> Double {
            (0..<n).reduce(0) { $0 + pow(x[i * n + $1] - y[i * n + $1], 2) } / Double(n)
        }
        var loss = 0.0
        var gradient = trained.map { [Double](repeating: 0, count: $0.count) }
        for i in 0..<b {
            let difference =
                (mse(trained[1], targets[1], i) - mse(ref[1], targets[1], i))
                - (mse(trained[0], targets[0], i) - mse(ref[0], targets[0], i))
            let z = -beta * factor * difference
            loss += log(1 + exp(-z)) / Double(b)
            // d(−log σ(z))/dz = −σ(−z); dz/d(diff) = −β·factor.
            let dDifference = -1 / (1 + exp(z)) * (-beta * factor) / Double(b)
            for j in 0..<n {
                let k = i * n + j
                gradient[1][k] = dDifference * 2 * (trained[1][k] - targets[1][k]) / Double(n)
                gradient[0][k] = -dDifference * 2 * (trained[0][k] - targets[0][k]) / Double(n)
            }
        }
        let count = Double(trained[2].count)
        loss += lambda * zip(trained[2], ref[2]).reduce(0) { $0 + pow($1.0 - $1.1, 2) } / count
        gradient[2] = zip(trained[2], ref[2]).map { lambda * 2 * ($0 - $1) / count }
        return (loss, gradient)
    }

    func testObjectiveAndGradientMatchAFloat64EvaluationOfTheFormula() {
        let (b, shape) = (3, [3, 2, 4, 4])
        for (trial, convention) in [DPOConvention.duo, .diffusionDPO].enumerated() {
            let key = RandomKey(seed: UInt64(10 + trial))
            let trained = (0..<3).map {
                Tensor.randn(shape, key: key.fold(in: UInt64($0)), requiresGrad: true)
            }
            let ref = (0..<3).map { Tensor.randn(shape, key: key.fold(in: UInt64(10 + $0))) * 1.01 }
            let targets = (0..<2).map { Tensor.randn(shape, key: key.fold(in: UInt64(20 + $0))) }
            // β small enough that σ stays away from 0 and 1 on these inputs.
            let (beta, lambda): (Float, Float) = (0.7, 3.5)
            let terms = DUOLoss.objective(
                trained: (trained[0], trained[1], trained[2]), reference: (ref[0], ref[1], ref[2]),
                targets: (targets[0], targets[1]), beta: beta, lambda: lambda,
                convention: convention)
            terms.loss.backward()
            let expected = reference(
                trained.map { $0.scalars.map(Double.init) },
                ref.map { $0.scalars.map(Double.init) },
                targets.map { $0.scalars.map(Double.init) }, b: b, beta: Double(beta),
                lambda: Double(lambda),
                factor: convention == .duo ? 1 : 0.5)
            XCTAssertEqual(
                Double(terms.loss.item), expected.loss, accuracy: 1e-5 * max(1, abs(expected.loss)))
            for (tensor, want) in zip(trained, expected.gradient) {
                let got = tensor.grad!.scalars
                let scale = want.map(abs).max()!
                XCTAssertGreaterThan(scale, 1e-4, "a gradient that could be wrong")
                for (g, w) in zip(got, want) {
                    XCTAssertEqual(Double(g), w, accuracy: 1e-5 * scale)
                }
            }
        }
    }

    /// The implicit accuracy counts pairs whose trained model moved towards the safe image.
    func testImplicitAccuracyAndMarginReadTheSignOfTheInsideTerm() {
        let shape = [2, 1, 2, 2]
        let target = Tensor.zeros(shape)
        let zero = Tensor.zeros(shape)
        // Pair 0: θ fits the safe image better than ref (preferred); pair 1: the other way.
        let safe = Tensor([0.1, 0.1, 0.1, 0.1, 0.9, 0.9, 0.9, 0.9], shape: shape)
        let ref = Tensor([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5], shape: shape)
        let terms = DUOLoss.objective(
            trained: (zero + 0.5, safe, zero), reference: (ref, ref, zero),
            targets: (target, target),
            beta: 2, lambda: 0, convention: .duo)
        XCTAssertEqual(terms.implicitAccuracy, 0.5)
        // inside = −2 ((0.01 − 0.25) − 0) = 0.48 and −2 (0.81 − 0.25) = −1.12.
        XCTAssertEqual(terms.rewardMargin, (0.48 - 1.12) / 2, accuracy: 1e-6)
    }
}
