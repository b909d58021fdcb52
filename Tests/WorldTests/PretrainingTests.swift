import Diffusion
import Foundation
import Tensor
import World
import XCTest

final class PretrainingTests: XCTestCase {
    func testAnInterruptedRunResumesToTheSameWeights() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("pretrain-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        var parameters = Pretraining.Parameters()
        parameters.steps = 4
        parameters.batchSize = 2
        parameters.checkpointEvery = 100

        try Pretraining.train(directory: root + "/straight", parameters: parameters, resume: false)
        // Stopped after step 2 (checkpointed there), then resumed to the end.
        try Pretraining.train(directory: root + "/split", parameters: parameters, resume: false) { event in
            if case .step(let step, _, _) = event { return step < 2 }
            return true
        }
        try Pretraining.train(directory: root + "/split", parameters: parameters, resume: true)

        for file in ["checkpoint.safetensors", "model/unet/diffusion_pytorch_model.safetensors",
                     "model/text_encoder/model.safetensors"] {
            let a = try Data(contentsOf: URL(fileURLWithPath: root + "/straight/" + file))
            let b = try Data(contentsOf: URL(fileURLWithPath: root + "/split/" + file))
            XCTAssertEqual(a, b, "\(file): resumed run differs from the straight one")
        }
        // The written folder is a model duo loads.
        let model = try StableDiffusion.load(directory: root + "/straight/model")
        XCTAssertEqual(model.tokenizer.encode("a small red circle").count, 6, "one token per world word")
        var other = parameters
        other.seed = 1
        XCTAssertThrowsError(try Pretraining.train(directory: root + "/split", parameters: other, resume: true)) {
            XCTAssertTrue("\($0)".contains("other settings"), "\($0)")
        }
    }
}
