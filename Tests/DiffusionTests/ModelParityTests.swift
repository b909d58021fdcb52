import Diffusion
import Formats
import Foundation
import Tensor
import TestSupport
import XCTest

/// Forward passes of the tiny random models in Fixtures/models against the outputs
/// diffusers and transformers computed for the same inputs (tools/make_model_fixtures.py).
///
/// The issue asks for a max abs error <= 1e-4; the measured error is below 2e-6, and the
/// tests hold 1e-5, tight enough to tell exact GELU from its tanh approximation.
final class ModelParityTests: XCTestCase {
    static let models = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
        .appendingPathComponent("models").path
    static let reference = try! SafeTensorsReader(path: models + "/reference.safetensors")

    /// A reference tensor of the fixture script.
    static func tensor(_ name: String) throws -> Tensor {
        Tensor(try reference.floats(name), shape: try reference.info(name).shape)
    }

    /// Token id sequences stored as a [B, T] float tensor.
    static func ids(_ name: String) throws -> [[Int]] {
        let t = try tensor(name)
        let (rows, length) = (t.shape[0], t.shape[1])
        return (0..<rows).map { r in (0..<length).map { Int(t.scalars[r * length + $0]) } }
    }

    func tensor(_ name: String) throws -> Tensor { try Self.tensor(name) }

    func testTextEncoderMatchesTransformers() throws {
        let encoder = try CLIPTextModel.load(directory: Self.models + "/pipeline/text_encoder")
        let rows = try Self.ids("text.input_ids")
        let hidden = GradMode.withNoGrad { encoder(rows) }
        assertClose(
            hidden, try tensor("text.last_hidden_state").scalars, rtol: 0, atol: 1e-5,
            "CLIPTextModel last_hidden_state (transformers)")
    }

    func unetOutput(_ folder: String, _ prefix: String, context: Bool) throws -> Tensor {
        let unet = try UNet2DConditionModel.load(directory: Self.models + folder)
        let timesteps = try tensor(prefix + ".timesteps").scalars
        let sample = try tensor(prefix + ".sample")
        let ctx = context ? try tensor(prefix + ".context") : nil
        return GradMode.withNoGrad { unet(sample, timesteps: timesteps, context: ctx) }
    }

    func testUNetWithCrossAttentionMatchesDiffusers() throws {
        assertClose(
            try unetOutput("/pipeline/unet", "unet_a", context: true),
            try tensor("unet_a.output").scalars, rtol: 0, atol: 1e-5, "UNet a (diffusers)")
    }

    func testUNetWithPerBlockHeadsAndLinearProjectionMatchesDiffusers() throws {
        assertClose(
            try unetOutput("/unet-b", "unet_b", context: true),
            try tensor("unet_b.output").scalars, rtol: 0, atol: 1e-5,
            "UNet b, fp16 weights (diffusers)")
    }

    func testUNetWithoutCrossAttentionMatchesDiffusers() throws {
        assertClose(
            try unetOutput("/unet-c", "unet_c", context: false),
            try tensor("unet_c.output").scalars, rtol: 0, atol: 1e-5,
            "UNet c, no context (diffusers)")
    }

    func testSharedSamplesGiveTheRepeatedSamplesOutputs() throws {
        // B samples with 2B + 1 texts (text i for sample i mod B) against the samples
        // repeated to 2B + 1 rows, on UNets a (one resnet a block) and b (two, so the states
        // repeat inside a block, and linear projections), each checked against diffusers
        // above. The second B texts are the first in reverse, so a repetition in another
        // order gives other outputs.
        for (folder, prefix) in [("/pipeline/unet", "unet_a"), ("/unet-b", "unet_b")] {
            let unet = try UNet2DConditionModel.load(directory: Self.models + folder)
            let (sample, texts) = (try tensor(prefix + ".sample"), try tensor(prefix + ".context"))
            let b = sample.shape[0]
            XCTAssertGreaterThan(b, 1, prefix)
            let reversed = concat((0..<b).reversed().map { texts.slice(batch: $0) }, axis: 0)
            let context = concat([texts, reversed, texts.slice(batch: 0)], axis: 0)
            let t = try tensor(prefix + ".timesteps").scalars
            let (shared, repeated) = GradMode.withNoGrad {
                (
                    unet(sample, timesteps: t, context: context),
                    unet(
                        concat([sample, sample, sample.slice(batch: 0)], axis: 0),
                        timesteps: t + t + [t[0]], context: context)
                )
            }
            XCTAssertEqual(shared.shape, repeated.shape, prefix)
            assertClose(shared, repeated.scalars, rtol: 0, atol: 1e-5, "\(prefix), shared samples")
        }
    }

    func testVAEEncodeAndDecodeMatchDiffusers() throws {
        let vae = try AutoencoderKL.load(directory: Self.models + "/pipeline/vae")
        let (mean, std) = GradMode.withNoGrad { vae.encode(try! tensor("vae.image")) }
        assertClose(mean, try tensor("vae.mean").scalars, rtol: 0, atol: 1e-5, "VAE posterior mean")
        assertClose(std, try tensor("vae.std").scalars, rtol: 0, atol: 1e-5, "VAE posterior std")
        let decoded = GradMode.withNoGrad { vae.decode(try! tensor("vae.latents")) }
        assertClose(decoded, try tensor("vae.decoded").scalars, rtol: 0, atol: 1e-5, "VAE decode")
    }
}
