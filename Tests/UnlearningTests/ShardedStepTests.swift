import Diffusion
import Foundation
import Tensor
import TestSupport
import XCTest

@testable import Unlearning

/// A micro-batch runs as data-parallel shards of its pairs; its gradient and logged values
/// must be those of the whole batch in one pass (each shard weighted by its pairs).
final class ShardedStepTests: XCTestCase {
    func trainer(directory: String) throws -> UnlearningTrainer {
        let n = 5
        let key = RandomKey(seed: 11)
        let pairs = PairData(
            safe: Tensor.uniform([n, 3, 32, 32], low: -1, high: 1, key: key.fold(in: 1)),
            unsafe: Tensor.uniform([n, 3, 32, 32], low: -1, high: 1, key: key.fold(in: 2)),
            unsafePrompts: (0..<n).map { "\($0 + 1) striped red circles" },
            safePrompts: (0..<n).map { "\($0 + 1) red circles" })
        var settings = UnlearningSettings()
        settings.promptedShare = 0.5
        settings.batchSize = n  // shards of 2 and 3 pairs
        settings.targets = [.selfAttention, .convs]  // the embedded default's
        let trainer = try UnlearningTrainer(
            model: TinyWorldModel.model, pairs: pairs, settings: settings, directory: directory,
            identity: [])
        // A trained adapter, so that the DPO term's gradient is not the fresh one's.
        for (_, adapter) in trainer.lora.adapters {
            adapter.up.assign(Tensor.randn(adapter.up.shape, key: key.fold(in: 3)) * 0.05)
        }
        return trainer
    }

    func gradientsAndValues(_ trainer: UnlearningTrainer, shards: Int) -> (
        [[Float]], [(String, Float)]
    ) {
        trainer.shardCount = shards
        trainer.optimizer.zeroGrad()
        let values = trainer.backwardMicroBatch(3, scale: 0.5)
        defer { trainer.optimizer.zeroGrad() }
        return (trainer.optimizer.parameters.map { $0.grad!.scalars }, values)
    }

    func testDUOShardsHaveTheWholeBatchsGradientAndValues() throws {
        let threads = Parallel.threadCount
        defer { Parallel.threadCount = threads }
        Parallel.threadCount = 2  // the shards at the same time, on a one-core runner too
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "sharded-\(UUID())"
        ).path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let trainer = try trainer(directory: folder)
        let (whole, wholeValues) = gradientsAndValues(trainer, shards: 1)
        let (sharded, shardedValues) = gradientsAndValues(trainer, shards: 2)
        // Per gradient, not per entry: GEMMs blocked for another batch size round
        // differently, and entries that cancel to near zero keep that rounding. The forward
        // and the backward pass each move by ρ, and a weight's gradient sums over the rows
        // of its layer's input (up to b·32·32), cut here into the shards' sums.
        let rho = Float32Rounding.network(weights: trainer.model.unet.parameters)
        let rows = Float32Rounding.sum(trainer.settings.batchSize * 32 * 32)
        let relative = (2 * rho * rho + rows * rows).squareRoot()
        for (a, b) in zip(sharded, whole) {
            let error = zip(a, b).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot()
            let norm = b.map { $0 * $0 }.reduce(0, +).squareRoot()
            XCTAssertLessThan(error, relative * norm)
        }
        XCTAssertEqual(shardedValues.map(\.0), wholeValues.map(\.0))
        let values = Dictionary(wholeValues, uniquingKeysWith: { a, _ in a })
        for (a, b) in zip(shardedValues, wholeValues) {
            XCTAssertEqual(a.1, b.1, accuracy: tolerance(a.0, values, trainer, rho: rho), a.0)
        }
    }

    /// How far logged value `key` may move between the whole batch and its shards: the
    /// whole batch runs b pairs through the UNet, the shards 2 and 3, so every prediction
    /// moves by up to a relative ρ (Float32Rounding).
    func tolerance(
        _ key: String, _ values: [String: Float], _ trainer: UnlearningTrainer, rho: Float
    ) -> Float {
        let settings = trainer.settings
        let (b, pixels) = (settings.batchSize, 3 * 32 * 32)
        let mse = values.filter { $0.key.hasPrefix("mse_") }.map(\.value).max()!
        // The targets are unit-variance noise, so the predictions' RMS is at most 1 + sqrt(mse).
        func meanSquare(_ value: Float, count: Int, relative: Float) -> Float {
            Float32Rounding.meanSquare(
                value, count: count, scale: 1 + mse.squareRoot(), relative: relative)
        }
        // A pair's margin: β times a difference of four per-image MSEs (in quadrature, ×2).
        let margin = settings.beta * 2 * meanSquare(mse, count: pixels, relative: rho)
        // A mean of squares of θ − ref, whose two predictions both move.
        let prior = meanSquare(values["prior"] ?? 0, count: b * pixels, relative: 2 * rho)
        let moved: Float
        switch key {
        case "dpo", "reward_margin": moved = margin  // −log σ has a slope of at most 1
        case "implicit_accuracy": moved = 0  // a share of margins > 0: none is within `margin` of 0
        case "prior": moved = prior
        case "loss": moved = margin + settings.resolvedLambda * prior
        default: moved = meanSquare(values[key]!, count: b * pixels, relative: rho)  // the MSEs
        }
        // The mean over the pairs, summed per shard and then over the shards.
        return moved + abs(values[key]!) * Float32Rounding.sum(b)
    }
}
