import Diffusion
import Tensor

/// The training images in the UNet's space, each as it is and mirrored (the script flips
/// the pixels before the VAE): the VAE posterior's mean and standard deviation, encoded
/// once, so that a draw of `latent_dist.sample()` is mean + std × noise. A pixel-space
/// model's images are their own latents.
struct InversionImages {
    /// [orientation][image]: mean and std [1, C, h, w] (std nil for a pixel model).
    let posteriors: [[(mean: Tensor, std: Tensor?)]]
    let scalingFactor: Float
    let trainTimesteps: Int

    init(model: StableDiffusion, images: Tensor, trainTimesteps: Int) {
        scalingFactor = model.vae?.config.scalingFactor ?? 1
        self.trainTimesteps = trainTimesteps
        posteriors = [images, Self.mirrored(images)].map { oriented in
            (0..<oriented.shape[0]).map { i in
                let image = oriented.slice(batch: i)
                guard let vae = model.vae else { return (image, nil) }
                return GradMode.withNoGrad { vae.encode(image) }
            }
        }
    }

    /// `images` [N, C, H, W] flipped left to right.
    static func mirrored(_ images: Tensor) -> Tensor {
        let width = images.shape[3]
        let values = images.scalars
        var flipped = values
        for row in 0..<(values.count / width) {
            for x in 0..<width { flipped[row * width + x] = values[row * width + width - 1 - x] }
        }
        return Tensor(flipped, shape: images.shape)
    }

    /// One latent [C, h, w].
    var latentShape: [Int] { Array(posteriors[0][0].mean.shape.dropFirst()) }

    /// The micro-batch's x₀ [B, C, h, w]: each member's posterior (mirrored where drawn)
    /// sampled with the drawn noise, times the VAE's scaling factor.
    func latents(_ members: [Int], draws: MicroBatchDraws) -> Tensor {
        let rows = members.enumerated().map { j, image in
            let (mean, std) = posteriors[draws.flips[j] ? 1 : 0][image]
            guard let std else { return mean }
            return (mean + std * draws.posteriorNoise.slice(batch: j)) * scalingFactor
        }
        return concat(rows, axis: 0)
    }
}
