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
        /// nil: the model folder's own sampler (`StableDiffusion.defaultSchedulerKind`).
        public var scheduler: SchedulerKind?

        public init(prompt: String) { self.prompt = prompt }
    }

    /// Latents for `count` images: image i draws from `RandomKey(seed).fold(in: i)`, so an
    /// image does not depend on how many are made with it.
    public static func initialLatents(model: StableDiffusion, parameters p: Parameters) throws
        -> Tensor
    {
        let (h, w) = try latentSize(model: model, parameters: p)
        let key = RandomKey(seed: p.seed)
        return concat(
            (0..<p.count).map {
                Tensor.randn(
                    [1, model.unet.config.inChannels, h, w], key: key.fold(in: UInt64($0)))
            }, axis: 0)
    }

    public static func latentSize(model: StableDiffusion, parameters p: Parameters) throws
        -> (Int, Int)
    {
        let f = model.scaleFactor
        let height = p.height ?? model.unet.config.sampleSize * f
        let width = p.width ?? model.unet.config.sampleSize * f
        let multiple = f * model.unet.downsamplingFactor
        guard height % multiple == 0, width % multiple == 0, height > 0, width > 0 else {
            throw SamplingError(
                "height and width must be positive multiples of \(multiple), got \(height)x\(width)"
            )
        }
        try MemoryEstimate.check(
            MemoryEstimate.sampling(model: model, height: height, width: width, images: p.count),
            what: "sampling \(p.count) image(s) of \(height)x\(width)")
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
            throw SamplingError(
                "latents of shape \(start.shape), expected \([p.count, model.unet.config.inChannels, h, w])"
            )
        }
        let key = RandomKey(seed: p.seed)
        let final = denoise(
            model: model, start: start, prompts: [p.prompt], negativePrompts: [p.negativePrompt],
            keys: (0..<p.count).map { key.fold(in: UInt64($0)) }, guidance: p.guidance,
            scheduler: scheduler, timesteps: scheduler.timesteps,
            progress: { progress($0, scheduler.timesteps.count) })
        return GradMode.withNoGrad { GuidedDenoising.toUnitRange(model.decode(final)) }
    }

    /// One image of a batch: its prompt, negative prompt and the key of its noise.
    public struct Request: Hashable, Sendable {
        public var prompt: String
        public var negativePrompt: String
        public var key: RandomKey

        public init(prompt: String, negativePrompt: String = "", key: RandomKey) {
            self.prompt = prompt
            self.negativePrompt = negativePrompt
            self.key = key
        }
    }

    /// A batch of images, each with its own prompts and noise: image i starts from
    /// `randn(key_i)`, so it is the image `sample` makes for the same prompt with
    /// key_i = RandomKey(seed).fold(in: i). -> [B, 3, H, W] in [0, 1].
    public static func sample(
        model: StableDiffusion, requests: [Request], steps: Int = 50, guidance: Float = 7.5,
        scheduler kind: SchedulerKind? = nil, height: Int? = nil, width: Int? = nil
    ) throws -> Tensor {
        var parameters = Parameters(prompt: "")
        parameters.steps = steps
        parameters.height = height
        parameters.width = width
        let (h, w) = try latentSize(model: model, parameters: parameters)
        var scheduler = try model.scheduler(kind)
        try scheduler.setTimesteps(steps)
        let start = concat(
            requests.map {
                Tensor.randn([1, model.unet.config.inChannels, h, w], key: $0.key)
            }, axis: 0)
        let final = denoise(
            model: model, start: start, prompts: requests.map(\.prompt),
            negativePrompts: requests.map(\.negativePrompt), keys: requests.map(\.key),
            guidance: guidance, scheduler: scheduler, timesteps: scheduler.timesteps)
        return GradMode.withNoGrad { GuidedDenoising.toUnitRange(model.decode(final)) }
    }

    /// Guided denoising of `start` [B, C, h, w] through `timesteps` (all of the scheduler's
    /// for text-to-image, the last ones for image-to-image). Prompts are one for all or one
    /// per image; image i's step noise (DDPM) comes from keys[i].fold(in: step + 1).
    ///
    /// The images run as `DataParallel.shardCount` independent batches, each on its own thread: on two cores
    /// that beats splitting each of the UNet's small ops (BENCHMARKS.md). Each batch steps
    /// its own copy of `scheduler`, fresh from `setTimesteps` (PNDM's steps keep state).
    static func denoise(
        model: StableDiffusion, start: Tensor, prompts: [String], negativePrompts: [String],
        keys: [RandomKey], guidance: Float, scheduler: DiffusionScheduler, timesteps: [Int],
        progress: (Int) -> Void = { _ in }
    ) -> Tensor {
        let stochastic = scheduler is DDPMScheduler
        let condition = model.encode(prompts), unconditional = model.encode(negativePrompts)
        let ranges = DataParallel.shardRanges(start.shape[0], shards: DataParallel.shardCount)
        let finals = DataParallel.map(shards: ranges.count) { i in
            let images = ranges[i]
            var scheduler = scheduler
            // Text states for one prompt serve every image; per-image ones are cut too.
            func rows(_ states: Tensor) -> Tensor {
                states.shape[0] == 1 ? states : states.rows(images)
            }
            return GuidedDenoising.run(
                unet: model.unet, latents: start.rows(images), condition: rows(condition),
                unconditional: rows(unconditional), guidance: guidance, timesteps: timesteps,
                step: { sample, noise, t, index in
                    let variance =
                        stochastic
                        ? concat(
                            keys[images].map {
                                Tensor.randn(
                                    [1] + Array(sample.shape.dropFirst()),
                                    key: $0.fold(in: UInt64(index + 1)))
                            }, axis: 0)
                        : nil
                    return scheduler.step(
                        modelOutput: noise, timestep: t, sample: sample,
                        varianceNoise: variance
                    ).prevSample
                },
                // The shards move in step: the first one reports for all.
                progress: i == 0 ? progress : { _ in })
        }
        return concat(finals, axis: 0)
    }
}

/// A sampling request that cannot be served (a size or latents shape that does not fit the
/// model), in one line.
public typealias SamplingError = OneLineError
