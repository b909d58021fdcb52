import Foundation
import Formats
import Tensor

/// Text-to-image sampling, as diffusers' StableDiffusionPipeline does it.
public enum TextToImage {
    public struct Parameters: Sendable {
        public var prompt: String
        /// The unconditional side of classifier-free guidance ("" as in diffusers).
        public var negativePrompt = ""
        public var steps = 50
        public var guidance: Float = 7.5
        public var seed: UInt64 = 0
        /// Image size in pixels; nil: the UNet's sample size times the VAE scale factor.
        public var height: Int?
        public var width: Int?
        public var count = 1
        public var scheduler = SchedulerKind.ddim

        public init(prompt: String) { self.prompt = prompt }
    }

    /// Latents for `count` images: image i draws from `RandomKey(seed).fold(in: i)`, so an
    /// image does not depend on how many are made with it.
    public static func initialLatents(model: StableDiffusion, parameters p: Parameters) throws -> Tensor {
        let (h, w) = try latentSize(model: model, parameters: p)
        let key = RandomKey(seed: p.seed)
        return concat((0..<p.count).map {
            Tensor.randn([1, model.unet.config.inChannels, h, w], key: key.fold(in: UInt64($0)))
        }, axis: 0)
    }

    static func latentSize(model: StableDiffusion, parameters p: Parameters) throws -> (Int, Int) {
        let f = model.scaleFactor
        let height = p.height ?? model.unet.config.sampleSize * f
        let width = p.width ?? model.unet.config.sampleSize * f
        let multiple = f * model.unet.downsamplingFactor
        guard height % multiple == 0, width % multiple == 0, height > 0, width > 0 else {
            throw SamplingError("height and width must be positive multiples of \(multiple), got \(height)x\(width)")
        }
        return (height / f, width / f)
    }

    /// Samples images [count, 3, H, W] with values in [0, 1]. `latents` replaces the
    /// initial noise (diffusers' `latents=`): [count, C, h, w].
    public static func sample(
        model: StableDiffusion, parameters p: Parameters, latents: Tensor? = nil,
        progress: (Int, Int) -> Void = { _, _ in }
    ) throws -> Tensor {
        var scheduler = try model.scheduler(p.scheduler)
        try scheduler.setTimesteps(p.steps)
        let start = try latents ?? initialLatents(model: model, parameters: p)
        let (h, w) = try latentSize(model: model, parameters: p)
        guard start.shape == [p.count, model.unet.config.inChannels, h, w] else {
            throw SamplingError("latents of shape \(start.shape), expected \([p.count, model.unet.config.inChannels, h, w])")
        }
        let key = RandomKey(seed: p.seed)
        let stepper = scheduler
        let final = GuidedDenoising.run(
            unet: model.unet, latents: start, condition: model.encode([p.prompt]),
            unconditional: model.encode([p.negativePrompt]), guidance: p.guidance,
            timesteps: scheduler.timesteps,
            step: { sample, noise, t, index in
                // Fresh noise per image and step (DDPM), from keys that do not depend on
                // the batch: image i, step s uses fold(i).fold(s + 1).
                let variance = p.scheduler == .ddpm
                    ? concat((0..<p.count).map {
                        Tensor.randn([1] + Array(sample.shape.dropFirst()),
                                     key: key.fold(in: UInt64($0)).fold(in: UInt64(index + 1)))
                    }, axis: 0)
                    : nil
                return stepper.step(modelOutput: noise, timestep: t, sample: sample,
                                    varianceNoise: variance).prevSample
            },
            progress: { progress($0, p.steps) })
        return GradMode.withNoGrad { GuidedDenoising.toUnitRange(model.decode(final)) }
    }
}

/// A sampling request that cannot be served (a size or latents shape that does not fit the
/// model), in one line.
public struct SamplingError: Error, CustomStringConvertible {
    public let description: String

    public init(_ description: String) { self.description = description }
}
