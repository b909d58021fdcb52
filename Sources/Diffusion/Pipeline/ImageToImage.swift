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
        public var scheduler = SchedulerKind.ddim

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
              [1, batch].contains(negativePrompts.count) else {
            throw SamplingError(
                "image-to-image of \(batch) images with \(keys.count) keys, \(prompts.count) "
                    + "prompts and \(negativePrompts.count) negative prompts")
        }
        var scheduler = try model.scheduler(settings.scheduler)
        try scheduler.setTimesteps(settings.steps)
        let timesteps = try scheduler.timesteps(strength: settings.strength)
        let clean = encode(model, images, keys: keys)  // [B, C, h, w]
        let noise = concat(keys.map {
            Tensor.randn([1] + Array(clean.shape.dropFirst()), key: $0.fold(in: 1))
        }, axis: 0)
        let start = scheduler.addNoise(
            original: clean, noise: noise, timesteps: Array(repeating: timesteps[0], count: batch))
        // The step noise (DDPM) of image i comes from keys[i].fold(in: 2).fold(in: step + 1),
        // apart from the two draws above.
        let final = TextToImage.denoise(
            model: model, start: start, prompts: prompts, negativePrompts: negativePrompts,
            keys: keys.map { $0.fold(in: 2) }, guidance: settings.guidance, scheduler: scheduler,
            timesteps: timesteps)
        return GradMode.withNoGrad { GuidedDenoising.toUnitRange(model.decode(final)) }
    }

    /// Model-space x₀ of images in [-1, 1]: the pixels, or a VAE posterior sample scaled
    /// by the scaling factor (diffusers' `retrieve_latents` with sample mode).
    static func encode(_ model: StableDiffusion, _ images: Tensor, keys: [RandomKey]) -> Tensor {
        guard let vae = model.vae else { return images }
        return GradMode.withNoGrad {
            let single = split(images, sizes: Array(repeating: 1, count: keys.count), axis: 0)
            let latents = concat(zip(single, keys).map { image, key in
                vae.encodeSample(image, key: key.fold(in: 3))
            }, axis: 0)
            return latents * vae.config.scalingFactor
        }
    }
}
