import Diffusion
import Formats
import Foundation
import Tensor
import TestSupport
import XCTest

/// A full DDIM run with classifier-free guidance (10 steps, guidance 7.5) from the same
/// latents as diffusers' StableDiffusionPipeline (tools/make_model_fixtures.py), both ways
/// `GuidedDenoising` runs the two halves: as two shards on two threads, and as one UNet call
/// on shared samples (the way inside a data-parallel shard, and on one thread).
final class SamplingParityTests: XCTestCase {
    func testDDIMWithGuidanceMatchesDiffusersPipeline() throws {
        try checkAgainstDiffusers()
    }

    func testDDIMWithGuidanceOnSharedSamplesMatchesDiffusersPipeline() throws {
        let saved = Parallel.threadCount
        defer { Parallel.threadCount = saved }
        Parallel.threadCount = 1
        XCTAssertFalse(DataParallel.threadsAreFree(for: 2))
        try checkAgainstDiffusers()
    }

    func checkAgainstDiffusers(file: StaticString = #filePath, line: UInt = #line) throws {
        let models = ModelParityTests.models
        let (tensor, ids) = (ModelParityTests.tensor, ModelParityTests.ids)
        let encoder = try CLIPTextModel.load(directory: models + "/pipeline/text_encoder")
        let unet = try UNet2DConditionModel.load(directory: models + "/pipeline/unet")
        let vae = try AutoencoderKL.load(directory: models + "/pipeline/vae")
        var scheduler = try DDIMScheduler(
            contentsOf: models + "/pipeline/scheduler/scheduler_config.json")
        try scheduler.setTimesteps(10)

        let (condition, unconditional) = GradMode.withNoGrad {
            (encoder(try! ids("pipeline.cond_ids")), encoder(try! ids("pipeline.uncond_ids")))
        }
        let latents = GuidedDenoising.run(
            unet: unet, latents: try tensor("pipeline.latents"), condition: condition,
            unconditional: unconditional, guidance: 7.5, timesteps: scheduler.timesteps
        ) { sample, noise, t, _ in
            scheduler.step(modelOutput: noise, timestep: t, sample: sample, varianceNoise: nil)
                .prevSample
        }
        let image = GradMode.withNoGrad {
            GuidedDenoising.toUnitRange(vae.decode(latents / vae.config.scalingFactor))
        }
        let expected = try tensor("pipeline.image")
        XCTAssertEqual(image.shape, expected.shape, file: file, line: line)
        // The bar: within 2/255 on all but a handful of pixels.
        let off = zip(image.scalars, expected.scalars).filter { abs($0 - $1) > 2 / 255 }.count
        let largest = zip(image.scalars, expected.scalars).map { abs($0 - $1) }.max()!
        print(
            "sampling parity: \(off) of \(image.count) values beyond 2/255, largest difference \(largest)"
        )
        XCTAssertLessThanOrEqual(off, 5, file: file, line: line)
        // Not a trivial match of clamped pixels: most values lie inside (0, 1).
        let inside = expected.scalars.filter { $0 > 0.01 && $0 < 0.99 }.count
        XCTAssertGreaterThan(
            inside, expected.count / 2, "\(inside) of \(expected.count) unclamped", file: file,
            line: line)
    }
}
