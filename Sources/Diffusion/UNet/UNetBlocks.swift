import Tensor

/// The down, middle and up blocks of UNet2DConditionModel. A block without attentions is
/// diffusers' DownBlock2D / UpBlock2D / UNetMidBlock2D; with them the CrossAttn variant.

/// Resnets (each followed by a transformer in the cross-attention variant), then an
/// optional downsampler. Returns the output and the skip states it adds.
public final class DownBlock: Layer {
    public let resnets: [ResnetBlock2D]
    public let attentions: [Transformer2DModel]
    public let downsampler: Downsample2D?

    init(inChannels: Int, outChannels: Int, index: Int, config c: UNetConfig, key: RandomKey?) {
        let keys = key.split(2 * c.layersPerBlock + 1)
        resnets = (0..<c.layersPerBlock).map { j in
            ResnetBlock2D(
                inChannels: j == 0 ? inChannels : outChannels, outChannels: outChannels,
                timeEmbedChannels: c.timeEmbedDim, groups: c.normGroups, eps: c.normEps,
                key: keys[j])
        }
        attentions =
            c.downBlocks[index] == .plain
            ? []
            : (0..<c.layersPerBlock).map { j in
                Transformer2DModel(
                    channels: outChannels, heads: c.heads[index],
                    layers: c.transformerLayersPerBlock, contextDim: c.crossAttentionDim,
                    groups: c.normGroups, useLinearProjection: c.useLinearProjection,
                    key: keys[c.layersPerBlock + j])
            }
        let isLast = index == c.blockOutChannels.count - 1
        downsampler = isLast ? nil : Downsample2D(channels: outChannels, key: keys.last!)
    }

    public var namedParameters: [(String, Tensor)] {
        scoped("resnets", resnets) + scoped("attentions", attentions)
            + scoped("downsamplers.0", downsampler)
    }

    func callAsFunction(_ x: Tensor, time: Tensor, context: Tensor?) -> (Tensor, [Tensor]) {
        var x = x
        var skips: [Tensor] = []
        for (j, resnet) in resnets.enumerated() {
            x = resnet(x, timeEmbedding: time)
            if !attentions.isEmpty { x = attentions[j](x, context: context!) }
            skips.append(x)
        }
        if let downsampler {
            x = downsampler(x)
            skips.append(x)
        }
        return (x, skips)
    }
}

/// UNetMidBlock2DCrossAttn: resnet, cross-attention transformer, resnet. As a
/// UNet2DConditionModel builds UNetMidBlock2D (no layers, no attention), a single resnet.
public final class MidBlock: Layer {
    public let resnets: [ResnetBlock2D]
    public let attentions: [Transformer2DModel]

    init(config c: UNetConfig, key: RandomKey?) {
        let channels = c.blockOutChannels.last!
        let keys = key.split(3)
        let crossAttention = c.midBlock == .crossAttention
        resnets = (0..<(crossAttention ? 2 : 1)).map {
            ResnetBlock2D(
                inChannels: channels, outChannels: channels,
                timeEmbedChannels: c.timeEmbedDim, groups: c.normGroups, eps: c.normEps,
                key: keys[$0])
        }
        attentions =
            crossAttention
            ? [
                Transformer2DModel(
                    channels: channels, heads: c.heads.last!, layers: c.transformerLayersPerBlock,
                    contextDim: c.crossAttentionDim, groups: c.normGroups,
                    useLinearProjection: c.useLinearProjection, key: keys[2])
            ] : []
    }

    public var namedParameters: [(String, Tensor)] {
        scoped("resnets", resnets) + scoped("attentions", attentions)
    }

    func callAsFunction(_ x: Tensor, time: Tensor, context: Tensor?) -> Tensor {
        var x = resnets[0](x, timeEmbedding: time)
        for (attention, resnet) in zip(attentions, resnets.dropFirst()) {
            x = resnet(attention(x, context: context!), timeEmbedding: time)
        }
        return x
    }
}

/// layersPerBlock + 1 resnets, each taking the concatenation with one skip state (and
/// followed by a transformer in the cross-attention variant), then an optional upsampler.
public final class UpBlock: Layer {
    public let resnets: [ResnetBlock2D]
    public let attentions: [Transformer2DModel]
    public let upsampler: Upsample2D?

    /// index counts up blocks from the bottom; channel counts as diffusers derives them.
    init(index: Int, config c: UNetConfig, key: RandomKey?) {
        let reversed = Array(c.blockOutChannels.reversed())
        let layers = c.layersPerBlock + 1
        let out = reversed[index]
        let previous = reversed[max(index - 1, 0)]
        let input = reversed[min(index + 1, reversed.count - 1)]
        let keys = key.split(2 * layers + 1)
        resnets = (0..<layers).map { j in
            let skip = j == layers - 1 ? input : out
            return ResnetBlock2D(
                inChannels: (j == 0 ? previous : out) + skip, outChannels: out,
                timeEmbedChannels: c.timeEmbedDim, groups: c.normGroups,
                eps: c.normEps, key: keys[j])
        }
        let heads = Array(c.heads.reversed())[index]
        attentions =
            c.upBlocks[index] == .plain
            ? []
            : (0..<layers).map { j in
                Transformer2DModel(
                    channels: out, heads: heads, layers: c.transformerLayersPerBlock,
                    contextDim: c.crossAttentionDim, groups: c.normGroups,
                    useLinearProjection: c.useLinearProjection, key: keys[layers + j])
            }
        let isLast = index == reversed.count - 1
        upsampler = isLast ? nil : Upsample2D(channels: out, key: keys.last!)
    }

    public var namedParameters: [(String, Tensor)] {
        scoped("resnets", resnets) + scoped("attentions", attentions)
            + scoped("upsamplers.0", upsampler)
    }

    /// skips: this block's skip states, consumed from the last (for shared samples, those
    /// from before the first cross-attention hold fewer images than x: repeated here).
    func callAsFunction(_ x: Tensor, skips: [Tensor], time: Tensor, context: Tensor?) -> Tensor {
        var x = x
        for (j, resnet) in resnets.enumerated() {
            let skip = repeatingBatch(skips[skips.count - 1 - j], to: x.shape[0])
            x = resnet(concat([x, skip], axis: 1), timeEmbedding: time)
            if !attentions.isEmpty { x = attentions[j](x, context: context!) }
        }
        return upsampler?(x) ?? x
    }
}
