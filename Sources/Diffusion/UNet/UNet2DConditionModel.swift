import Tensor

/// diffusers' UNet2DConditionModel (Rombach et al. 2022): predicts the noise in a noisy
/// sample at a timestep, conditioned on a text sequence through cross-attention.
public final class UNet2DConditionModel: Layer {
    public let config: UNetConfig
    public let convIn: Conv2d
    public let timeLinear1: Linear
    public let timeLinear2: Linear
    public let downBlocks: [DownBlock]
    public let midBlock: MidBlock
    public let upBlocks: [UpBlock]

    /// Activation checkpointing per resnet and transformer, as diffusers'
    /// `enable_gradient_checkpointing()`: a trained pass keeps their inputs only and runs
    /// each again in the backward pass. Training a Stable Diffusion-size UNet fits in
    /// memory with it; outputs and gradients are the same.
    public var gradientCheckpointing = false {
        didSet {
            let resnets =
                downBlocks.flatMap(\.resnets) + midBlock.resnets + upBlocks.flatMap(\.resnets)
            let attentions =
                downBlocks.flatMap(\.attentions) + midBlock.attentions
                + upBlocks.flatMap(\.attentions)
            for resnet in resnets { resnet.gradientCheckpointing = gradientCheckpointing }
            for attention in attentions { attention.gradientCheckpointing = gradientCheckpointing }
        }
    }
    public let convNormOut: GroupNorm
    public let convOut: Conv2d

    /// A model with PyTorch-style random initialization from `key` (zeros when nil: the
    /// weights are then loaded from a checkpoint).
    public init(config c: UNetConfig, key: RandomKey?) {
        config = c
        let keys = key.split(7)
        let channels = c.blockOutChannels
        convIn = Conv2d(c.inChannels, channels[0], kernel: 3, padding: 1, key: keys[0])
        timeLinear1 = Linear(channels[0], c.timeEmbedDim, key: keys[1])
        timeLinear2 = Linear(c.timeEmbedDim, c.timeEmbedDim, key: keys[2])
        let downKeys = keys[3].split(channels.count)
        downBlocks = channels.indices.map { i in
            DownBlock(
                inChannels: i == 0 ? channels[0] : channels[i - 1], outChannels: channels[i],
                index: i, config: c, key: downKeys[i])
        }
        midBlock = MidBlock(config: c, key: keys[4])
        let upKeys = keys[5].split(channels.count)
        upBlocks = channels.indices.map { UpBlock(index: $0, config: c, key: upKeys[$0]) }
        convNormOut = GroupNorm(groups: c.normGroups, channels: channels[0], eps: c.normEps)
        convOut = Conv2d(channels[0], c.outChannels, kernel: 3, padding: 1, key: keys[6])
    }

    public var namedParameters: [(String, Tensor)] {
        scoped("conv_in", convIn) + scoped("time_embedding.linear_1", timeLinear1)
            + scoped("time_embedding.linear_2", timeLinear2) + scoped("down_blocks", downBlocks)
            + scoped("mid_block", midBlock) + scoped("up_blocks", upBlocks)
            + scoped("conv_norm_out", convNormOut) + scoped("conv_out", convOut)
    }

    /// How many times the sample is halved: H and W must be multiples of 2^this.
    public var downsamplingFactor: Int { 1 << (config.blockOutChannels.count - 1) }

    /// sample: [B, in, H, W], timesteps: B values, context: [B, S, crossAttentionDim]
    /// (nil only for a model without cross-attention) -> [B, out, H, W].
    ///
    /// Shared samples: context may hold N > B sequences, text i for sample i mod B
    /// ([unconditional; conditional] for classifier-free guidance, N = 2B); the output is
    /// then [N, out, H, W], what the samples repeated to N rows give. Nothing before the
    /// first cross-attention reads the text, so those layers (conv_in, the first blocks, the
    /// first self-attention) run once per sample and their states are repeated from there
    /// (`repeatingBatch`).
    public func callAsFunction(_ sample: Tensor, timesteps: [Float], context: Tensor?) -> Tensor {
        precondition(
            sample.shape[2] % downsamplingFactor == 0 && sample.shape[3] % downsamplingFactor == 0,
            "UNet sample \(sample.shape): H and W must be multiples of \(downsamplingFactor)")
        // time embedding
        let projected = timestepEmbedding(
            timesteps, dim: config.blockOutChannels[0],
            flipSinToCos: config.flipSinToCos,
            downscaleFreqShift: config.freqShift)
        let time = timeLinear2(silu(timeLinear1(projected)))
        // down
        var x = convIn(sample)
        var skips = [x]
        for block in downBlocks {
            let (out, states) = block(x, time: time, context: context)
            x = out
            skips += states
        }
        // middle
        x = midBlock(x, time: time, context: context)
        // up, consuming the skip states from the last
        for block in upBlocks {
            let count = block.resnets.count
            x = block(x, skips: Array(skips.suffix(count)), time: time, context: context)
            skips.removeLast(count)
        }
        let output = convOut(convNormOut.silu(x))
        return context.map { repeatingBatch(output, to: $0.shape[0]) } ?? output
    }
}

/// x [B, ...] as a batch of `batch` >= B rows, row i being x's row i mod B: [x; x; ...] cut
/// to `batch` rows, the layout of a UNet's shared samples; x itself when B is `batch`.
func repeatingBatch(_ x: Tensor, to batch: Int) -> Tensor {
    let b = x.shape[0]
    if b == batch { return x }
    precondition(batch > b, "a batch of \(b) repeated to \(batch)")
    let copies = Array(repeating: x, count: batch / b)
    let rest = batch % b
    return concat(rest == 0 ? copies : copies + [x.rows(0..<rest)], axis: 0)
}
