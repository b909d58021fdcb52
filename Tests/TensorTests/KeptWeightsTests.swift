import TestSupport
import XCTest

@testable import Tensor

/// A frozen 3x3 kernel's Winograd transform (16 channels or more, 16 x 16 pixels or more)
/// is made once and kept with the weight's memory (`Storage.derived`): every way a weight's
/// values change must drop it.
final class KeptWeightsTests: XCTestCase {
    /// conv2d with `weight`, against the same convolution with a fresh copy of its values
    /// (which nothing was kept for).
    func assertConvolvesWithCurrentValues(
        _ x: Tensor, _ weight: Tensor, _ what: String, line: UInt = #line
    ) {
        let fresh = Tensor(weight.scalars, shape: weight.shape)
        XCTAssertEqual(
            largestDifference(
                conv2d(x, weight: weight, padding: 1).scalars,
                conv2d(x, weight: fresh, padding: 1).scalars), 0, what, line: line)
    }

    func largestDifference(_ a: [Float], _ b: [Float]) -> Float {
        zip(a, b).map { abs($0 - $1) }.max()!
    }

    func testWinogradWeightsFollowAssignedAndWrittenValues() {
        let x = randomTensor([2, 16, 16, 16], seed: 1)
        let weight = randomTensor([16, 16, 3, 3], seed: 2)
        _ = conv2d(x, weight: weight, padding: 1)
        weight.assign(randomTensor([16, 16, 3, 3], seed: 3))
        assertConvolvesWithCurrentValues(x, weight, "after assign")
        weight.withUnsafeMutableBufferPointer { values in
            for i in values.indices { values[i] *= -0.5 }
        }
        assertConvolvesWithCurrentValues(x, weight, "after a write in place")
    }

    /// The backward pass convolves dY with the weight it saved (detached, so frozen-looking):
    /// an optimizer step on the weight must drop that transform too.
    func testInputGradientFollowsAnOptimizerStep() {
        let x = randomTensor([2, 16, 16, 16], seed: 4)
        x.requiresGrad = true
        let weight = randomTensor([16, 16, 3, 3], seed: 5)
        weight.requiresGrad = true
        func inputGradient(_ w: Tensor) -> [Float] {
            let y = conv2d(x, weight: w, padding: 1)
            return sum(y * y).gradients(for: [x])[0]!.scalars
        }
        let optimizer = AdamW(parameters: [weight])
        _ = inputGradient(weight)
        let grads = sum(conv2d(x, weight: weight, padding: 1)).gradients(for: [weight])
        optimizer.update(learningRate: 0.1, gradients: grads)
        let fresh = Tensor(weight.scalars, shape: weight.shape, requiresGrad: true)
        XCTAssertEqual(largestDifference(inputGradient(weight), inputGradient(fresh)), 0)
    }

    /// A trained weight's transform is kept for passes without gradients (sampling between
    /// optimizer steps, as ESD does); the next step's update must drop it.
    func testATrainedWeightSampledWithoutGradientsFollowsItsOptimizerStep() {
        let x = randomTensor([2, 16, 16, 16], seed: 6)
        let weight = randomTensor([16, 16, 3, 3], seed: 7)
        weight.requiresGrad = true
        let optimizer = AdamW(parameters: [weight])
        for step in 0..<2 {
            _ = GradMode.withNoGrad { conv2d(x, weight: weight, padding: 1) }
            GradMode.withNoGrad {
                assertConvolvesWithCurrentValues(x, weight, "sampled before step \(step)")
            }
            let grads = sum(conv2d(x, weight: weight, padding: 1)).gradients(for: [weight])
            optimizer.update(learningRate: 0.1, gradients: grads)
        }
        GradMode.withNoGrad { assertConvolvesWithCurrentValues(x, weight, "after the steps") }
    }
}
