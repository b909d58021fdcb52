import Tensor

/// The settings of diffusers' AutoencoderKL config that the model uses.
public struct VAEConfig: Equatable, Sendable {
    public var inChannels: Int
    public var outChannels: Int
    public var latentChannels: Int
    public var blockOutChannels: [Int]
    public var layersPerBlock: Int
    public var normGroups: Int
    public var scalingFactor: Float
    public var midBlockAttention: Bool

    public init(
        inChannels: Int = 3, outChannels: Int = 3, latentChannels: Int = 4,
        blockOutChannels: [Int], layersPerBlock: Int = 2, normGroups: Int = 32,
        scalingFactor: Float = 0.18215, midBlockAttention: Bool = true
    ) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.latentChannels = latentChannels
        self.blockOutChannels = blockOutChannels
        self.layersPerBlock = layersPerBlock
        self.normGroups = normGroups
        self.scalingFactor = scalingFactor
        self.midBlockAttention = midBlockAttention
    }

    /// Reads `vae/config.json`.
    public init(file config: ConfigFile) throws {
        let down = try config.strings("down_block_types")
        let up = try config.strings("up_block_types")
        for (key, names, allowed) in [
            ("down_block_types", down, "DownEncoderBlock2D"),
            ("up_block_types", up, "UpDecoderBlock2D"),
        ] {
            if let bad = names.first(where: { $0 != allowed }) {
                throw ModelError(file: config.path, key: key, "unsupported block type '\(bad)'")
            }
        }
        try config.require("act_fn", in: ["silu"])
        try config.require("use_quant_conv", equals: true)
        try config.require("use_post_quant_conv", equals: true)
        if config.has("shift_factor") {
            throw ModelError(
                file: config.path, key: "shift_factor",
                "expected null (duo does not support it), found a value")
        }
        self.init(
            inChannels: try config.size("in_channels", default: 3),
            outChannels: try config.size("out_channels", default: 3),
            latentChannels: try config.size("latent_channels", default: 4),
            blockOutChannels: try config.sizes("block_out_channels", count: down.count),
            layersPerBlock: try config.size("layers_per_block", default: 1, limit: 64),
            normGroups: try config.size("norm_num_groups", default: 32),
            scalingFactor: try config.float("scaling_factor", default: 0.18215),
            midBlockAttention: try config.bool("mid_block_add_attention", default: true))
        guard !down.isEmpty, up.count == down.count else {
            throw ModelError(
                file: config.path, key: "up_block_types",
                "expected as many blocks as down_block_types (\(down.count), at least 1), found \(up.count)"
            )
        }
        for c in blockOutChannels where c % normGroups != 0 {
            throw ModelError(
                file: config.path, key: "block_out_channels",
                "\(c) channels are not divisible by \(normGroups) groups (norm_num_groups)")
        }
    }
}

/// The middle of the VAE's encoder and decoder: resnet, single-head spatial attention,
/// resnet (UNetMidBlock2D without a time embedding).
public final class VAEMidBlock: Layer {
    public let resnets: [ResnetBlock2D]
    public let attention: SpatialSelfAttention?

    init(channels: Int, config c: VAEConfig, key: RandomKey?) {
        let keys = key.split(3)
        resnets = (0..<2).map {
            ResnetBlock2D(
                inChannels: channels, outChannels: channels, timeEmbedChannels: nil,
                groups: c.normGroups, eps: 1e-6, key: keys[$0])
        }
        attention =
            c.midBlockAttention
            ? SpatialSelfAttention(
                channels: channels, heads: 1, groups: c.normGroups, eps: 1e-6, key: keys[2])
            : nil
    }

    public var namedParameters: [(String, Tensor)] {
        scoped("resnets", resnets) + scoped("attentions.0", attention)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var x = resnets[0](x)
        if let attention { x = attention(x) }
        return resnets[1](x)
    }
}

/// A resnet stack with an optional resampler: DownEncoderBlock2D or UpDecoderBlock2D.
public final class VAEBlock: Layer {
    public let resnets: [ResnetBlock2D]
    public let downsampler: Downsample2D?
    public let upsampler: Upsample2D?

    init(
        inChannels: Int, outChannels: Int, layers: Int, down: Bool, resample: Bool,
        groups: Int, key: RandomKey?
    ) {
        let keys = key.split(layers + 1)
        resnets = (0..<layers).map { j in
            ResnetBlock2D(
                inChannels: j == 0 ? inChannels : outChannels, outChannels: outChannels,
                timeEmbedChannels: nil, groups: groups, eps: 1e-6, key: keys[j])
        }
        downsampler =
            down && resample
            ? Downsample2D(channels: outChannels, asymmetricPadding: true, key: keys[layers]) : nil
        upsampler = !down && resample ? Upsample2D(channels: outChannels, key: keys[layers]) : nil
    }

    public var namedParameters: [(String, Tensor)] {
        scoped("resnets", resnets) + scoped("downsamplers.0", downsampler)
            + scoped("upsamplers.0", upsampler)
    }

    func callAsFunction(_ x: Tensor) -> Tensor {
        var x = x
        for resnet in resnets { x = resnet(x) }
        if let downsampler { x = downsampler(x) }
        if let upsampler { x = upsampler(x) }
        return x
    }
}

/// diffusers' AutoencoderKL (Kingma & Welling 2014; the first stage of Rombach et al.
/// 2022): an encoder to a diagonal Gaussian over latents, a decoder back to images.
public final class AutoencoderKL: Layer {
    public let config: VAEConfig
    // encoder
    public let encoderConvIn: Conv2d
    public let encoderBlocks: [VAEBlock]
    public let encoderMid: VAEMidBlock
    public let encoderNormOut: GroupNorm
    public let encoderConvOut: Conv2d
    public let quantConv: Conv2d
    // decoder
    public let postQuantConv: Conv2d
    public let decoderConvIn: Conv2d
    public let decoderMid: VAEMidBlock
    public let decoderBlocks: [VAEBlock]
    public let decoderNormOut: GroupNorm
    public let decoderConvOut: Conv2d

    public init(config c: VAEConfig, key: RandomKey?) {
        config = c
        let keys = key.split(12)
        let channels = c.blockOutChannels
        let (latent, n) = (c.latentChannels, channels.count)
        encoderConvIn = Conv2d(c.inChannels, channels[0], kernel: 3, padding: 1, key: keys[0])
        let downKeys = keys[1].split(n)
        encoderBlocks = (0..<n).map { i in
            VAEBlock(
                inChannels: channels[max(i - 1, 0)], outChannels: channels[i],
                layers: c.layersPerBlock, down: true, resample: i < n - 1,
                groups: c.normGroups, key: downKeys[i])
        }
        encoderMid = VAEMidBlock(channels: channels[n - 1], config: c, key: keys[2])
        encoderNormOut = GroupNorm(groups: c.normGroups, channels: channels[n - 1], eps: 1e-6)
        encoderConvOut = Conv2d(channels[n - 1], 2 * latent, kernel: 3, padding: 1, key: keys[3])
        quantConv = Conv2d(2 * latent, 2 * latent, kernel: 1, key: keys[4])
        postQuantConv = Conv2d(latent, latent, kernel: 1, key: keys[5])
        decoderConvIn = Conv2d(latent, channels[n - 1], kernel: 3, padding: 1, key: keys[6])
        decoderMid = VAEMidBlock(channels: channels[n - 1], config: c, key: keys[7])
        let reversed = Array(channels.reversed())
        let upKeys = keys[8].split(n)
        decoderBlocks = (0..<n).map { i in
            VAEBlock(
                inChannels: reversed[max(i - 1, 0)], outChannels: reversed[i],
                layers: c.layersPerBlock + 1, down: false, resample: i < n - 1,
                groups: c.normGroups, key: upKeys[i])
        }
        decoderNormOut = GroupNorm(groups: c.normGroups, channels: channels[0], eps: 1e-6)
        decoderConvOut = Conv2d(channels[0], c.outChannels, kernel: 3, padding: 1, key: keys[9])
    }

    public var namedParameters: [(String, Tensor)] {
        scoped("encoder.conv_in", encoderConvIn) + scoped("encoder.down_blocks", encoderBlocks)
            + scoped("encoder.mid_block", encoderMid)
            + scoped("encoder.conv_norm_out", encoderNormOut)
            + scoped("encoder.conv_out", encoderConvOut) + scoped("quant_conv", quantConv)
            + scoped("post_quant_conv", postQuantConv) + scoped("decoder.conv_in", decoderConvIn)
            + scoped("decoder.mid_block", decoderMid) + scoped("decoder.up_blocks", decoderBlocks)
            + scoped("decoder.conv_norm_out", decoderNormOut)
            + scoped("decoder.conv_out", decoderConvOut)
    }

    /// The posterior over latents of images in [-1, 1]: image [B, in, H, W] ->
    /// mean and std [B, latent, H/f, W/f] (f = 2^(blocks - 1)).
    public func encode(_ image: Tensor) -> (mean: Tensor, std: Tensor) {
        var x = encoderConvIn(image)
        for block in encoderBlocks { x = block(x) }
        x = encoderConvOut(encoderNormOut.silu(encoderMid(x)))
        let moments = split(
            quantConv(x), sizes: [config.latentChannels, config.latentChannels], axis: 1)
        // diffusers' DiagonalGaussianDistribution clamps log-variance to [-30, 20].
        let logVariance = clamp(moments[1], min: -30, max: 20)
        return (moments[0], exp(logVariance * 0.5))
    }

    /// A latent drawn from the posterior: mean + std * noise.
    public func encodeSample(_ image: Tensor, key: RandomKey) -> Tensor {
        let (mean, std) = encode(image)
        return mean + std * Tensor.randn(mean.shape, key: key)
    }

    /// latents [B, latent, h, w] (unscaled: divide by `scalingFactor` first, as the
    /// pipeline does) -> images [B, out, h*f, w*f] in about [-1, 1].
    public func decode(_ latents: Tensor) -> Tensor {
        var x = decoderMid(decoderConvIn(postQuantConv(latents)))
        for block in decoderBlocks { x = block(x) }
        return decoderConvOut(decoderNormOut.silu(x))
    }
}
