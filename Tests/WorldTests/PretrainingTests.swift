import Diffusion
import Foundation
import Tensor
import World
import XCTest

final class PretrainingTests: XCTestCase {
    /// The steps a run made, from its progress reports.
    func steps(_ run: (_ progress: (Pretraining.Progress) -> Bool) throws -> Void) rethrows -> [Int]
    {
        var made: [Int] = []
        try run { event in
            if case .step(let step, _, _) = event { made.append(step) }
            return true
        }
        return made
    }

    func testAnInterruptedRunResumesToTheSameWeights() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent(
            "pretrain-\(UUID())"
        ).path
        defer { try? FileManager.default.removeItem(atPath: root) }
        var parameters = Pretraining.Parameters()
        parameters.steps = 4
        parameters.batchSize = 2
        parameters.checkpointEvery = 100

        try Pretraining.train(directory: root + "/straight", parameters: parameters, resume: false)
        // Stopped after step 2 (checkpointed there), then resumed to the end.
        try Pretraining.train(directory: root + "/split", parameters: parameters, resume: false) {
            event in
            if case .step(let step, _, _) = event { return step < 2 }
            return true
        }
        let resumedSteps = try steps {
            try Pretraining.train(
                directory: root + "/split", parameters: parameters, resume: true, progress: $0)
        }
        // The same bytes come from a restart at step 0; the steps it ran tell them apart.
        XCTAssertEqual(resumedSteps, [3, 4], "the resumed run's steps")

        // Exact: each step trains on a batch of the same shape in both runs.
        for file in [
            "checkpoint.safetensors", "model/unet/diffusion_pytorch_model.safetensors",
            "model/text_encoder/model.safetensors",
        ] {
            let a = try Data(contentsOf: URL(fileURLWithPath: root + "/straight/" + file))
            let b = try Data(contentsOf: URL(fileURLWithPath: root + "/split/" + file))
            XCTAssertEqual(a, b, "\(file): resumed run differs from the straight one")
        }
        // The written folder is a model duo loads.
        let model = try StableDiffusion.load(directory: root + "/straight/model")
        XCTAssertEqual(
            model.tokenizer.encode("a small red circle").count, 6, "one token per world word")
        var other = parameters
        other.seed = 1
        XCTAssertThrowsError(
            try Pretraining.train(directory: root + "/split", parameters: other, resume: true)
        ) {
            XCTAssertTrue("\($0)".contains("other settings"), "\($0)")
        }
    }

    /// The learning rate is constant after the warm-up: a finished run continued to more
    /// steps gives the weights of the longer run from scratch.
    func testAFinishedRunContinuesToMoreSteps() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent(
            "pretrain-more-\(UUID())"
        ).path
        defer { try? FileManager.default.removeItem(atPath: root) }
        var parameters = Pretraining.Parameters()
        parameters.batchSize = 2
        parameters.checkpointEvery = 100
        parameters.steps = 4
        try Pretraining.train(directory: root + "/straight", parameters: parameters, resume: false)
        parameters.steps = 2
        try Pretraining.train(directory: root + "/continued", parameters: parameters, resume: false)
        parameters.steps = 4
        let continuedSteps = try steps {
            try Pretraining.train(
                directory: root + "/continued", parameters: parameters, resume: true, progress: $0)
        }
        XCTAssertEqual(continuedSteps, [3, 4], "the continued run's steps")
        let a = try Data(
            contentsOf: URL(
                fileURLWithPath: root + "/straight/model/unet/diffusion_pytorch_model.safetensors"))
        let b = try Data(
            contentsOf: URL(
                fileURLWithPath: root + "/continued/model/unet/diffusion_pytorch_model.safetensors")
        )
        XCTAssertEqual(a, b)
    }
}
