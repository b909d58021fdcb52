import Foundation

/// What a run needs in memory at the least, checked against the machine before anything
/// is allocated: an image size the machine cannot hold is an error that states the
/// estimate, not an allocation failure (or hours of swapping) later.
public enum MemoryEstimate {
    /// A lower bound in bytes of sampling `images` images of `height` x `width` pixels: the
    /// guided UNet's feature maps (two rows per image, each level's channels at its
    /// resolution, with the input, output and skip of each level alive at once), the
    /// column buffers of its widest 3x3 convolution (one image per thread, its input up to
    /// three levels' channels where an up block concatenates skips) and the VAE decoder's
    /// feature maps, float32.
    public static func sampling(model: StableDiffusion, height: Int, width: Int, images: Int)
        -> Double
    {
        let f = model.scaleFactor
        let (h, w) = (Double(height / f), Double(width / f))
        let unetLevels = model.unet.config.blockOutChannels.enumerated().map { i, channels in
            Double(channels) * h * w / pow(4, Double(i))
        }
        let unet = 2 * Double(images) * unetLevels.reduce(0, +) * 3 * 4
        let columns = 2 * (unetLevels.max() ?? 0) * 3 * 9 * 4
        let vaeLevels =
            model.vae?.config.blockOutChannels.reversed().enumerated().map { i, channels in
                Double(channels) * h * w * pow(4, Double(i))
            } ?? []
        let vae = Double(images) * vaeLevels.reduce(0, +) * 3 * 4
        return unet + columns + vae
    }

    /// A lower bound in bytes of a training step on `rows` UNet rows at the model's own
    /// sample size: each level's feature maps kept for the backward pass, and their
    /// gradients, float32.
    public static func training(model: StableDiffusion, rows: Int) -> Double {
        training(unet: model.unet.config, rows: rows)
    }

    public static func training(unet config: UNetConfig, rows: Int) -> Double {
        let size = Double(config.sampleSize)
        let levels = config.blockOutChannels.enumerated().map { i, channels in
            Double(channels) * size * size / pow(4, Double(i))
        }
        return Double(rows) * levels.reduce(0, +) * 4 * 4
    }

    /// The machine's physical memory in bytes.
    public static var physicalMemory: Double { Double(ProcessInfo.processInfo.physicalMemory) }

    /// Throws when `bytes` exceed the machine's physical memory.
    public static func check(_ bytes: Double, what: String) throws {
        guard bytes > physicalMemory else { return }
        throw SamplingError(
            String(
                format: "%@ needs at least %.1f GB of memory; this machine has %.1f GB", what,
                bytes / 1e9, physicalMemory / 1e9))
    }
}
