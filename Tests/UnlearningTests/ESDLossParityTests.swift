import Diffusion
import Formats
import Foundation
import Tensor
import XCTest

@testable import Unlearning

/// ESD's objective against the same step in PyTorch with peft adapters, written as ESD's
/// reference computes it (tools/make_esd_fixture.py; rohitgandikota/erasing
/// train-esd.py): the trained model's concept prediction pulled to
/// e_0 − η (e_p − e_0) of the frozen model. Loss and every adapter gradient to 1e-4; a sign
/// error in the negative guidance, or a target on the wrong prompt, fails it.
final class ESDLossParityTests: XCTestCase {
    static let step = Bundle.module.resourcePath! + "/Fixtures/esd/step.safetensors"
    static let adapter = Bundle.module.resourcePath! + "/Fixtures/dpo/adapter.safetensors"

    func testESDStepMatchesTheReferenceObjectiveInPyTorch() throws {
        let step = try SafeTensorsReader(path: Self.step)
        func tensor(_ name: String) throws -> Tensor {
            Tensor(try step.floats(name), shape: try step.info(name).shape)
        }
        let model = try StableDiffusion.load(directory: DUOStepParityTests.pipeline)
        let lora = try LoRAFile.load(Self.adapter, into: model.unet)
        let config = try SchedulerConfig(contentsOf: model.schedulerConfigPath, for: .ddpm)
        // The fixture's x_t noises given images, as ESDLoss takes x_t from anywhere.
        let timesteps = try tensor("timesteps").scalars.map { Int($0) }
        let xt = NoiseSchedule(config: config).addNoise(
            original: try tensor("x0"), noise: try tensor("noise"), timesteps: timesteps)
        let result = ESDLoss.compute(
            unet: model.unet, weights: lora, xt: xt, timesteps: timesteps,
            concept: try tensor("concept"), emptyPrompt: model.encode([""]),
            eta: Float(step.metadata["eta"]!)!)
        result.loss.backward()
        XCTAssertEqual(result.loss.item, try tensor("loss").item, accuracy: 1e-4 * 0.05)
        var largest: Float = 0
        for (name, parameter) in lora.namedParameters {
            let expected = try tensor("grad.unet." + name).scalars
            let got = parameter.grad!.scalars
            let scale = max(expected.map(abs).max()!, 1e-3)
            for (g, e) in zip(got, expected) { largest = max(largest, abs(g - e) / scale) }
        }
        XCTAssertLessThan(largest, 1e-4, "largest relative gradient difference")
    }
}
