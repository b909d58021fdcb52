import Tensor

/// Image-to-image (SDEdit, Meng et al. 2022), as diffusers' StableDiffusionImg2ImgPipeline
/// does it: keep the last int(steps × strength) inference timesteps (`get_timesteps`),
/// noise the image to the first of them (`add_noise`), then denoise with guidance.
/// Latent models encode the image with the VAE (a posterior sample times the scaling
/// factor) first; pixel-space models edit the pixels themselves.
public enum ImageToImage {
    public struct Settings: Hashable, Sendable {
        /// How much of the schedule to run again: 1 redraws from pure noise, small values
        /// keep the image.
        public var strength = 0.75
        public var steps = 50
        public var guidance: Float = 7.5
        /// nil: the model folder's own sampler.
        public var scheduler: SchedulerKind?

        public init() {}
    }

    /// Edits `images` [B, 3, H, W] in [-1, 1]: image i is noised with randn(keys[i]) and
    /// denoised towards prompts[i] away from negativePrompts[i] (prompt arrays hold one
    /// entry for all or one per image). -> [B, 3, H, W] in [0, 1].
    public static func edit(
        model: StableDiffusion, images: Tensor, prompts: [String], negativePrompts: [String],
        keys: [RandomKey], settings: Settings
    ) throws -> Tensor {
        let batch = images.shape[0]
        guard keys.count == batch, [1, batch].contains(prompts.count),
            [1, batch].contains(negativePrompts.count)
        else {
            throw SamplingError(
                "image-to-image of \(batch) images with \(keys.count) keys, \(prompts.count) "
                    + "prompts and \(negativePrompts.count) negative prompts")
        }
        let latentShape = try latentShape(model, images)
        let posteriorNoise =
            model.vae == nil
            ? nil
            : concat(
                keys.map {
                    Tensor.randn(latentShape, key: $0.fold(in: 3))
                }, axis: 0)
        let noise = concat(keys.map { Tensor.randn(latentShape, key: $0.fold(in: 1)) }, axis: 0)
        // The step noise (DDPM) of image i comes from keys[i].fold(in: 2).fold(in: step + 1),
        // apart from the two draws above.
        return try edit(
            model: model, images: images, prompts: prompts, negativePrompts: negativePrompts,
            noise: noise, posteriorNoise: posteriorNoise, stepKeys: keys.map { $0.fold(in: 2) },
            settings: settings)
    }

    /// The same edit with its random draws given: `noise` for add_noise and, for a latent
    /// model, `posteriorNoise` for the VAE posterior sample (both [B, C, h, w]), as
    /// diffusers draws them (to replay one of its runs).
    static func edit(
        model: StableDiffusion, images: Tensor, prompts: [String], negativePrompts: [String],
        noise: Tensor, posteriorNoise: Tensor?, stepKeys: [RandomKey], settings: Settings
    ) throws -> Tensor {
        var scheduler = try model.scheduler(settings.scheduler)
        try scheduler.setTimesteps(settings.steps)
        let timesteps = try scheduler.timesteps(strength: settings.strength)
        let clean = encode(model, images, posteriorNoise: posteriorNoise)  // [B, C, h, w]
        let start = scheduler.addNoise(
            original: clean, noise: noise,
            timesteps: Array(repeating: timesteps[0], count: images.shape[0]))
        let final = TextToImage.denoise(
            model: model, start: start, prompts: prompts, negativePrompts: negativePrompts,
            keys: stepKeys, guidance: settings.guidance, scheduler: scheduler, timesteps: timesteps)
        return GradMode.withNoGrad { GuidedDenoising.toUnitRange(model.decode(final)) }
    }

    /// [1, C, h, w] of one image's model-space x₀.
    static func latentShape(_ model: StableDiffusion, _ images: Tensor) throws -> [Int] {
        let f = model.scaleFactor
        guard images.rank == 4, images.shape[1] == 3, images.shape[2] % f == 0,
            images.shape[3] % f == 0
        else {
            throw SamplingError(
                "image-to-image needs images [B, 3, H, W] with H and W multiples of \(f), got \(images.shape)"
            )
        }
        let channels = model.vae?.config.latentChannels ?? images.shape[1]
        return [1, channels, images.shape[2] / f, images.shape[3] / f]
    }

    /// Model-space x₀ of images in [-1, 1]: the pixels, or a VAE posterior sample
    /// mean + std · noise times the scaling factor (diffusers' `retrieve_latents`, sample mode).
    static func encode(_ model: StableDiffusion, _ images: Tensor, posteriorNoise: Tensor?)
        -> Tensor
    {
        guard let vae = model.vae, let posteriorNoise else { return images }
        return GradMode.withNoGrad {
            let (mean, std) = vae.encode(images)
            return (mean + std * posteriorNoise) * vae.config.scalingFactor
        }
    }
}
