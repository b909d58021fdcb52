import Diffusion
import Foundation
import Tensor
import TestSupport
import XCTest

@testable import Unlearning

/// A micro-batch runs as data-parallel shards of its pairs; its gradient and logged values
/// must be those of the whole batch in one pass (each shard weighted by its pairs).
final class ShardedStepTests: XCTestCase {
    func trainer(_ method: UnlearningSettings.Method, directory: String) throws -> UnlearningTrainer {
        let n = 5
        let key = RandomKey(seed: 11)
        let pairs = PairData(
            safe: Tensor.uniform([n, 3, 32, 32], low: -1, high: 1, key: key.fold(in: 1)),
            unsafe: Tensor.uniform([n, 3, 32, 32], low: -1, high: 1, key: key.fold(in: 2)),
            unsafePrompts: (0..<n).map { "\($0 + 1) striped red circles" },
            safePrompts: (0..<n).map { "\($0 + 1) red circles" })
        var settings = UnlearningSettings()
        settings.method = method
        settings.promptedShare = method == .duo ? 0.5 : 0
        settings.batchSize = n  // shards of 2 and 3 pairs
        if method == .duo { settings.targets = [.selfAttention, .convs] }  // the embedded default's
        let trainer = try UnlearningTrainer(
            model: TinyWorldModel.model, pairs: pairs, settings: settings, directory: directory, identity: [])
        // A trained adapter, so that the DPO term's gradient is not the fresh one's.
        for (_, adapter) in trainer.lora.adapters {
            adapter.up.assign(Tensor.randn(adapter.up.shape, key: key.fold(in: 3)) * 0.05)
        }
        return trainer
    }

    func gradientsAndValues(_ trainer: UnlearningTrainer, shards: Int) -> ([[Float]], [(String, Float)]) {
        trainer.shardCount = shards
        trainer.optimizer.zeroGrad()
        let values = trainer.backwardMicroBatch(3, scale: 0.5)
        defer { trainer.optimizer.zeroGrad() }
        return (trainer.optimizer.parameters.map { $0.grad!.scalars }, values)
    }

    func check(_ method: UnlearningSettings.Method) throws {
        let threads = Parallel.threadCount
        defer { Parallel.threadCount = threads }
        Parallel.threadCount = 2  // the shards at the same time, on a one-core runner too
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sharded-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let trainer = try trainer(method, directory: folder)
        let (whole, wholeValues) = gradientsAndValues(trainer, shards: 1)
        let (sharded, shardedValues) = gradientsAndValues(trainer, shards: 2)
        // Per gradient, not per entry: GEMMs blocked for another batch size round
        // differently, and entries that cancel to near zero keep that rounding (0.5%).
        for (a, b) in zip(sharded, whole) {
            let error = zip(a, b).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot()
            let norm = b.map { $0 * $0 }.reduce(0, +).squareRoot()
            XCTAssertLessThan(error, 1e-5 * norm)
        }
        XCTAssertEqual(shardedValues.map(\.0), wholeValues.map(\.0))
        for (a, b) in zip(shardedValues, wholeValues) {
            XCTAssertEqual(a.1, b.1, accuracy: 1e-4 * max(1, abs(b.1)), a.0)
        }
    }

    func testDUOShardsHaveTheWholeBatchsGradientAndValues() throws { try check(.duo) }

    func testESDShardsHaveTheWholeBatchsGradientAndValues() throws { try check(.esd) }
}
