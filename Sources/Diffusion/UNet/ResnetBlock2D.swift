import Tensor

/// diffusers' ResnetBlock2D (the "default" time-embedding norm): two 3x3 convs with group
/// norm and SiLU, the time embedding added between them, a 1x1 shortcut when the channel
/// count changes (He et al. 2016, as adapted by Ho et al. 2020).
public final class ResnetBlock2D: Layer {
    public let norm1: GroupNorm
    public let conv1: Conv2d
    public let timeEmbProj: Linear?
    public let norm2: GroupNorm
    public let conv2: Conv2d
    public let convShortcut: Conv2d?
    /// Runs checkpointed (`Checkpoint`): keeps its inputs, not its activations, when trained.
    public var gradientCheckpointing = false

    public init(
        inChannels: Int, outChannels: Int, timeEmbedChannels: Int?, groups: Int, eps: Float,
        key: RandomKey?
    ) {
        let keys = key.split(4)
        norm1 = GroupNorm(groups: groups, channels: inChannels, eps: eps)
        conv1 = Conv2d(inChannels, outChannels, kernel: 3, padding: 1, key: keys[0])
        timeEmbProj = timeEmbedChannels.map { Linear($0, outChannels, key: keys[1]) }
        norm2 = GroupNorm(groups: groups, channels: outChannels, eps: eps)
        conv2 = Conv2d(outChannels, outChannels, kernel: 3, padding: 1, key: keys[2])
        convShortcut =
            inChannels == outChannels
            ? nil : Conv2d(inChannels, outChannels, kernel: 1, key: keys[3])
    }

    public var namedParameters: [(String, Tensor)] {
        scoped("norm1", norm1) + scoped("conv1", conv1) + scoped("time_emb_proj", timeEmbProj)
            + scoped("norm2", norm2) + scoped("conv2", conv2)
            + scoped("conv_shortcut", convShortcut)
    }

    /// x: [B, in, H, W], timeEmbedding: [B, T] or nil -> [B, out, H, W]
    public func callAsFunction(_ x: Tensor, timeEmbedding: Tensor? = nil) -> Tensor {
        guard gradientCheckpointing else { return forward(x, timeEmbedding: timeEmbedding) }
        return Checkpoint.run([x] + (timeEmbedding.map { [$0] } ?? [])) { inputs in
            self.forward(inputs[0], timeEmbedding: inputs.count > 1 ? inputs[1] : nil)
        }
    }

    func forward(_ x: Tensor, timeEmbedding: Tensor?) -> Tensor {
        var h = conv1(norm1.silu(x))
        if let timeEmbProj, let timeEmbedding {
            // For a UNet's shared samples x may already hold more images than the embedding.
            let t = repeatingBatch(timeEmbProj(silu(timeEmbedding)), to: h.shape[0])
            h = h + t.reshaped(t.shape + [1, 1])
        }
        h = conv2(norm2.silu(h))
        return (convShortcut?(x) ?? x) + h
    }
}
