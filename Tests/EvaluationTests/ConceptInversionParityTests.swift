import Diffusion
import Formats
import Foundation
import Tensor
import XCTest

@testable import Evaluation

/// Textual inversion's update against diffusers' `textual_inversion.py` run under accelerate
/// on the same draws (tools/make_inversion_fixture.py): the placeholder starts at the
/// initializer word's row; two optimizer steps over an epoch of micro-batches 2 + 2 + 1
/// with accumulation 2 (the second step the epoch's lone last micro-batch, as accelerate
/// syncs at its dataloader's end), AdamW at 5e-3 x 2 x 2, the drawn templates, flips,
/// posterior samples, noise and timesteps. The losses, the gradient norms and the row after
/// each step must agree.
final class ConceptInversionParityTests: XCTestCase {
    static let fixture = Bundle.module.resourcePath! + "/Fixtures/attack/inversion.safetensors"
    static let pipeline = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("MethodTests/Fixtures/sd-tiny").path

    func testTwoStepsMatchDiffusersTextualInversionUnderAccelerate() throws {
        let file = try SafeTensorsReader(path: Self.fixture)
        func tensor(_ name: String) throws -> Tensor {
            Tensor(try file.floats(name), shape: try file.info(name).shape)
        }
        let model = try StableDiffusion.load(directory: Self.pipeline)
        let rows = try tensor("embeddings")  // [3, hidden]: before, after step 1, after step 2
        let hidden = rows.shape[1]
        var settings = ConceptInversion.Settings(initializer: .word(file.metadata["initializer"]!))
        settings.placeholder = file.metadata["placeholder"]!
        settings.numTrainImages = 5
        settings.repeats = 1
        settings.trainBatchSize = Int(file.metadata["train_batch_size"]!)!
        settings.gradientAccumulationSteps = Int(file.metadata["gradient_accumulation_steps"]!)!
        settings.learningRate = Float(file.metadata["learning_rate"]!)!
        var reports: [ConceptInversion.Step] = []
        for steps in 1...2 {
            settings.maxTrainSteps = steps
            let inversion = try ConceptInversion(model: model, forbidden: [], settings: settings)
            XCTAssertEqual(
                inversion.initialEmbedding.scalars, Array(rows.scalars[0..<hidden]),
                "the initializer word's row")
            var draws = try RecordedInversionDraws(file)
            reports = []
            let learned = try XCTUnwrap(
                inversion.learn(images: try tensor("pixels"), prompts: [], draws: &draws) {
                    reports.append($0)
                    return true
                })
            let expected = Array(rows.scalars[(steps * hidden)..<((steps + 1) * hidden)])
            let largest = zip(learned.scalars, expected).map { abs($0 - $1) }.max()!
            XCTAssertLessThan(largest, 1e-4, "the row after step \(steps)")
        }
        // A loss near 1 and a gradient norm near 7e-4 in float32 agree to a few 1e-6 relative.
        let losses = try file.floats("losses")
        for (report, expected) in zip(
            reports.map(\.loss), [(losses[0] + losses[1]) / 2, losses[2]])
        {
            XCTAssertEqual(report, expected, accuracy: 1e-4, "step loss")
        }
        for (report, expected) in zip(
            reports.map(\.gradientNorm), try file.floats("gradient_norms"))
        {
            XCTAssertEqual(report, expected, accuracy: 1e-3 * expected, "gradient norm")
        }
    }
}

/// The fixture's draws: one epoch in its order, each micro-batch's rows of the per-example
/// draws in turn.
struct RecordedInversionDraws: TextualInversionDraws {
    let order: [Int]
    let templates: [Int]
    let flips: [Bool]
    let posteriorNoise: Tensor
    let noise: Tensor
    let timesteps: [Int]
    var used = 0

    init(_ file: SafeTensorsReader) throws {
        func tensor(_ name: String) throws -> Tensor {
            Tensor(try file.floats(name), shape: try file.info(name).shape)
        }
        order = try file.floats("order").map { Int($0) }
        templates = try file.floats("templates").map { Int($0) }
        flips = try file.floats("flips").map { $0 != 0 }
        posteriorNoise = try tensor("posterior_noise")
        noise = try tensor("noise")
        timesteps = try file.floats("timesteps").map { Int($0) }
    }

    mutating func order(epoch: Int, count: Int) -> [Int] {
        precondition(epoch == 0 && count == order.count, "the fixture holds one epoch")
        return order
    }

    mutating func microBatch(index: Int, shape: MicroBatchShape) -> MicroBatchDraws {
        let rows = used..<(used + shape.examples)
        used = rows.upperBound
        return MicroBatchDraws(
            templates: Array(templates[rows]), flips: Array(flips[rows]),
            posteriorNoise: posteriorNoise.rows(rows), noise: noise.rows(rows),
            timesteps: Array(timesteps[rows]))
    }
}
