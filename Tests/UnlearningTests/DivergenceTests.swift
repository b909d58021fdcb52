import Diffusion
import Formats
import Foundation
import Tensor
import XCTest

@testable import Unlearning

/// A run whose loss or parameters become NaN or infinite stops with an error naming the
/// step, writes nothing of that step, and leaves no adapter: never exit 0 with a NaN
/// adapter (before: a λ past Float's range trained on and wrote every tensor NaN).
final class DivergenceTests: XCTestCase {
    func testAnOverflowingLossStopsTheRunNamingTheStepAndKeepsTheLastCheckpoint() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "diverge-\(UUID())"
        ).path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let images = Tensor.randn([2, 3, 32, 32], key: RandomKey(seed: 1))
        let pairs = PairData(
            safe: images, unsafe: images * 0.5, unsafePrompts: ["a", "b"], safePrompts: ["a", "b"])
        var settings = UnlearningSettings()
        settings.batchSize = 2
        settings.steps = 4
        settings.checkpointEvery = 1
        // The output-preserving term times 3e38 is finite while the adapters are still at
        // zero (B is zero-initialized) and overflows once they have moved.
        settings.lambda = 3e38
        settings.learningRate = 10
        let trainer = try UnlearningTrainer(
            model: TinyWorldModel.model, pairs: pairs, settings: settings, directory: folder,
            identity: [])
        XCTAssertThrowsError(try trainer.train(resume: false)) { error in
            let message = "\(error)"
            // Which value overflows first (the loss, or the gradient norm's sum of squares)
            // is up to float rounding; the step is not.
            XCTAssertTrue(
                message.hasPrefix("step 2: ") && message.contains("training diverged"), message)
            XCTAssertTrue(message.contains("the checkpoint of step 1 is kept"), message)
        }
        let checkpoint = try SafeTensorsReader(path: folder + "/checkpoint.safetensors")
        for name in checkpoint.names {
            XCTAssertTrue(
                try checkpoint.floats(name).allSatisfy(\.isFinite), "\(name) of the kept checkpoint"
            )
        }
        let log = try String(contentsOfFile: folder + "/train.jsonl", encoding: .utf8)
        XCTAssertEqual(log.split(separator: "\n").count, 1, "the diverged step is not logged")
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/adapter.safetensors"))
    }
}
