import Foundation
import Tensor
import TestSupport
import XCTest

final class OptimizerTests: XCTestCase {
    /// Sets p.grad = g through the graph: d/dp sum(p * g) = g.
    private func setGradient(_ p: Tensor, _ g: [Float]) {
        p.zeroGrad()
        sum(p * Tensor(g, shape: p.shape)).backward()
    }

    func testAdamWMatchesTorchAlgorithm() {
        let initial: [Float] = [0.5, -1.5, 2.0, 0.0]
        let p = Tensor(initial, shape: [4], requiresGrad: true)
        let (lr, b1, b2, eps, wd) = (0.1, 0.9, 0.999, 1e-8, 0.05)
        let optimizer = AdamW(
            parameters: [p],
            options: .init(
                beta1: Float(b1), beta2: Float(b2),
                eps: Float(eps), weightDecay: Float(wd)))
        // torch.optim.AdamW's documented algorithm, in Double.
        var theta = initial.map(Double.init)
        var m = [Double](repeating: 0, count: 4), v = m
        for t in 1...6 {
            let g = (0..<4).map { i in Float(sin(Double(t * 4 + i))) }
            setGradient(p, g)
            optimizer.update(learningRate: Float(lr))
            for i in 0..<4 {
                theta[i] -= lr * wd * theta[i]
                m[i] = b1 * m[i] + (1 - b1) * Double(g[i])
                v[i] = b2 * v[i] + (1 - b2) * Double(g[i]) * Double(g[i])
                let mHat = m[i] / (1 - pow(b1, Double(t))), vHat = v[i] / (1 - pow(b2, Double(t)))
                theta[i] -= lr * mHat / (vHat.squareRoot() + eps)
            }
        }
        assertClose(p, theta.map(Float.init), rtol: 1e-5, atol: 1e-6, "AdamW after 6 steps")
    }

    func testFrozenParametersAreNotUpdated() {
        let trained = Tensor([1, 2], shape: [2], requiresGrad: true)
        let frozen = Tensor([3, 4], shape: [2], requiresGrad: false)
        sum(trained * frozen).backward()
        XCTAssertNil(frozen.grad)
        XCTAssertEqual(trained.grad?.scalars, [3, 4])
        AdamW(parameters: [trained, frozen]).update(learningRate: 0.1)
        XCTAssertEqual(frozen.scalars, [3, 4])
        XCTAssertNotEqual(trained.scalars, [1, 2])
    }

    func testClipGradNormScalesToMaxNorm() {
        let a = Tensor([0, 0], shape: [2], requiresGrad: true)
        let b = Tensor([0], shape: [1], requiresGrad: true)
        setGradient(a, [3, 4])
        setGradient(b, [12])
        let norm = clipGradNorm([a, b], maxNorm: 6.5)
        XCTAssertEqual(norm, 13, accuracy: 1e-5)  // sqrt(9 + 16 + 144)
        assertClose(a.grad!.scalars + b.grad!.scalars, [1.5, 2, 6], rtol: 1e-5, atol: 0, "halved")
        XCTAssertEqual(clipGradNorm([a, b], maxNorm: 100), 6.5, accuracy: 1e-5)
        assertClose(a.grad!.scalars, [1.5, 2], rtol: 1e-6, atol: 0, "below the bound: unchanged")
    }

    func testLearningRateSchedulesFollowDiffusers() {
        // diffusers: warm-up step/warmup, then cosine 0.5 (1 + cos(pi progress)).
        let cosine = LearningRateSchedule(
            baseRate: 1e-3, warmupSteps: 10, totalSteps: 110, decay: .cosine)
        XCTAssertEqual(cosine.rate(at: 0), 0)
        XCTAssertEqual(cosine.rate(at: 5), 5e-4, accuracy: 1e-9)
        XCTAssertEqual(cosine.rate(at: 10), 1e-3, accuracy: 1e-9)
        XCTAssertEqual(cosine.rate(at: 60), 5e-4, accuracy: 1e-9)
        XCTAssertEqual(cosine.rate(at: 110), 0, accuracy: 1e-9)
        let constant = LearningRateSchedule(baseRate: 2e-4, warmupSteps: 4, totalSteps: 50)
        XCTAssertEqual(constant.rate(at: 1), 5e-5, accuracy: 1e-10)
        XCTAssertEqual(constant.rate(at: 49), 2e-4)
    }
}
