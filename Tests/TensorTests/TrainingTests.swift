import Tensor
import TestSupport
import XCTest

/// End-to-end: a 2-layer conv net learns a fixed synthetic task with AdamW, and the same
/// seed gives the same bits.
final class TrainingTests: XCTestCase {
    /// The task: predict silu(3x3 box blur of x) per pixel, from x [N, 1, 8, 8].
    private func dataset() -> (inputs: Tensor, targets: Tensor) {
        let x = Tensor.randn([64, 1, 8, 8], key: RandomKey(seed: 100))
        let box = Tensor.full(1 / 9, [1, 1, 3, 3])
        let targets = GradMode.withNoGrad { silu(conv2d(x, weight: box, padding: 1) * 2) }
        return (x, targets)
    }

    private func train(seed: UInt64, steps: Int) -> (losses: [Float], weights: [[Float]]) {
        let (inputs, targets) = dataset()
        let keys = RandomKey(seed: seed).split(2)
        let w1 = Tensor.randn([8, 1, 3, 3], key: keys[0]) * 0.3
        let w2 = Tensor.randn([1, 8, 3, 3], key: keys[1]) * 0.1
        let (b1, b2) = (Tensor.zeros([8]), Tensor.zeros([1]))
        let parameters = [w1, b1, w2, b2]
        parameters.forEach { $0.requiresGrad = true }
        let optimizer = AdamW(parameters: parameters, options: .init(weightDecay: 0))
        let schedule = LearningRateSchedule(
            baseRate: 2e-2, warmupSteps: 10, totalSteps: steps, decay: .cosine)
        // Four batches of 16, taken in turn.
        let inputBatches = split(inputs, sizes: [16, 16, 16, 16], axis: 0)
        let targetBatches = split(targets, sizes: [16, 16, 16, 16], axis: 0)
        var losses: [Float] = []
        for step in 0..<steps {
            let (x, y) = (inputBatches[step % 4], targetBatches[step % 4])
            let hidden = silu(conv2d(x, weight: w1, bias: b1, padding: 1))
            let prediction = conv2d(hidden, weight: w2, bias: b2, padding: 1)
            let difference = prediction - y
            let loss = mean(difference * difference)
            optimizer.zeroGrad()
            loss.backward()
            clipGradNorm(parameters, maxNorm: 1)
            optimizer.update(learningRate: schedule.rate(at: step))
            losses.append(loss.item)
        }
        return (losses, parameters.map(\.scalars))
    }

    func testConvNetLearnsBeyondChanceAndIsBitReproducible() {
        let (_, targets) = dataset()
        // Chance level: the best constant prediction scores the targets' variance.
        let t = targets.scalars
        let average = t.reduce(0, +) / Float(t.count)
        let variance = t.map { ($0 - average) * ($0 - average) }.reduce(0, +) / Float(t.count)

        let first = train(seed: 7, steps: 240)
        let finalLoss = first.losses.suffix(4).reduce(0, +) / 4
        print("conv net: final MSE \(finalLoss), constant predictor \(variance)")
        XCTAssertLessThan(
            finalLoss, 0.02 * variance,
            "final MSE \(finalLoss) should be < 2% of the constant predictor's \(variance)")

        let second = train(seed: 7, steps: 240)
        XCTAssertEqual(first.losses.map(\.bitPattern), second.losses.map(\.bitPattern))
        XCTAssertEqual(
            first.weights.flatMap { $0 }.map(\.bitPattern),
            second.weights.flatMap { $0 }.map(\.bitPattern))
        let other = train(seed: 8, steps: 3)
        XCTAssertNotEqual(
            first.losses.prefix(3).map(\.bitPattern), other.losses.map(\.bitPattern),
            "another seed starts from other weights")
    }
}
