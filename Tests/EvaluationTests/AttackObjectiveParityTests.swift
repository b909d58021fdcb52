import Diffusion
import Formats
import Foundation
import Tensor
import Unlearning
import XCTest

@testable import Evaluation

/// The white-box attacks' objective against UnlearnDiffAtk's, in PyTorch on the tiny
/// pipeline with an adapter fused (tools/make_attack_fixture.py): the attacked model's
/// diffusion loss and its gradient with respect to the text conditioning, which is what
/// both attacks move. A wrong target, timestep or sign fails it.
final class AttackObjectiveParityTests: XCTestCase {
    static let fixtures = Bundle.module.resourcePath! + "/Fixtures/attack/objective.safetensors"
    static let tests = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent()

    func testTheObjectiveAndItsConditioningGradientMatchPyTorch() throws {
        let file = try SafeTensorsReader(path: Self.fixtures)
        func tensor(_ name: String) throws -> Tensor {
            Tensor(try file.floats(name), shape: try file.info(name).shape)
        }
        let model = try StableDiffusion.load(
            directory: Self.tests.appendingPathComponent("DiffusionTests/Fixtures/models/pipeline")
                .path)
        let adapter = Self.tests.appendingPathComponent(
            "UnlearningTests/Fixtures/dpo/adapter.safetensors"
        ).path
        try LoRAFile.load(adapter, into: model.unet).merge(into: model.unet)
        let objective = try AttackObjective(model: model)
        let context = try tensor("context")
        context.requiresGrad = true
        let loss = objective.loss(
            try tensor("x0"), context: context, noise: try tensor("noise"),
            timesteps: try tensor("timesteps").scalars.map { Int($0) })
        loss.backward()
        XCTAssertEqual(loss.item, try tensor("loss").item, accuracy: 1e-4)
        let expected = try tensor("grad.context").scalars
        let scale = expected.map(abs).max()!
        let largest = zip(context.grad!.scalars, expected).map { abs($0 - $1) / scale }.max()!
        XCTAssertLessThan(largest, 1e-4, "largest relative gradient difference")
    }
}
