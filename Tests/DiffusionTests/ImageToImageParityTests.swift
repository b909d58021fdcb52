import Formats
import Foundation
import Tensor
import XCTest

@testable import Diffusion

/// SDEdit as diffusers' StableDiffusionImg2ImgPipeline runs it (strength 0.6, 10 DDIM steps,
/// guidance 7.5, a batch of two with their own prompts and negative prompts), replaying its
/// random draws (tools/make_img2img_fixture.py).
final class ImageToImageParityTests: XCTestCase {
    func testImageToImageMatchesDiffusersImg2ImgPipeline() throws {
        let model = try StableDiffusion.load(directory: ModelParityTests.models + "/pipeline")
        try replay("img2img.safetensors", model: model)
    }

    /// The same run with SD 1.x's PNDM config: diffusers' get_timesteps keeps 7 of PNDM's
    /// 11 timesteps, without the repeat PLMS's first step expects; we follow it.
    func testImageToImageWithPNDMMatchesDiffusers() throws {
        let model = try PNDMSchedulerTests.pndmModel()
        XCTAssertEqual(model.defaultSchedulerKind, .pndm)
        try replay("img2img_pndm.safetensors", model: model)
    }

    func replay(_ name: String, model: StableDiffusion) throws {
        let fixture = try SafeTensorsReader(path: ModelParityTests.models + "/" + name)
        func tensor(_ name: String) throws -> Tensor {
            Tensor(try fixture.floats(name), shape: try fixture.info(name).shape)
        }
        let metadata = fixture.metadata
        var settings = ImageToImage.Settings()
        settings.strength = Double(metadata["strength"]!)!
        settings.steps = Int(metadata["steps"]!)!
        settings.guidance = Float(metadata["guidance"]!)!
        let image = try ImageToImage.edit(
            model: model, images: try tensor("image"),
            prompts: metadata["prompts"]!.components(separatedBy: "\n"),
            negativePrompts: metadata["negative_prompts"]!.components(separatedBy: "\n"),
            noise: try tensor("noise"), posteriorNoise: try tensor("posterior_noise"),
            stepKeys: [RandomKey(seed: 0), RandomKey(seed: 1)], settings: settings)
        let expected = try tensor("output")
        XCTAssertEqual(image.shape, expected.shape)
        let differences = zip(image.scalars, expected.scalars).map { abs($0 - $1) }
        print("img2img parity (\(name)): largest difference \(differences.max()!)")
        XCTAssertLessThanOrEqual(differences.max()!, 2 / 255)
        // Not a trivial match of saturated pixels, and the two images differ.
        XCTAssertGreaterThan(
            expected.scalars.filter { $0 > 0.01 && $0 < 0.99 }.count, expected.count / 2)
        let half = expected.count / 2
        XCTAssertGreaterThan(
            zip(expected.scalars[..<half], expected.scalars[half...]).map { abs($0 - $1) }.max()!,
            0.1)
    }
}
