import Tensor

/// diffusers' BasicTransformerBlock (layer-norm variant): self-attention, cross-attention
/// on the text, GEGLU feed-forward, each pre-normed and residual.
public final class BasicTransformerBlock: Layer {
    public let norm1: LayerNorm
    public let attn1: Attention
    public let norm2: LayerNorm
    public let attn2: Attention
    public let norm3: LayerNorm
    public let ff: FeedForward

    public init(dim: Int, heads: Int, headDim: Int, contextDim: Int, key: RandomKey?) {
        let keys = key.split(3)
        norm1 = LayerNorm(dim)
        attn1 = Attention(queryDim: dim, heads: heads, headDim: headDim, key: keys[0])
        norm2 = LayerNorm(dim)
        attn2 = Attention(
            queryDim: dim, contextDim: contextDim, heads: heads, headDim: headDim,
            key: keys[1])
        norm3 = LayerNorm(dim)
        ff = FeedForward(dim: dim, key: keys[2])
    }

    public var namedParameters: [(String, Tensor)] {
        scoped("norm1", norm1) + scoped("attn1", attn1) + scoped("norm2", norm2)
            + scoped("attn2", attn2) + scoped("norm3", norm3) + scoped("ff", ff)
    }

    /// x: [B, T, dim], context: [B, S, contextDim] -> [B, T, dim]; context may hold N > B
    /// sequences (a UNet's shared samples), and the output is then [N, T, dim].
    public func callAsFunction(_ x: Tensor, context: Tensor) -> Tensor {
        var x = x
        // self-attention
        x = attn1(norm1(x)) + x
        x = repeatingBatch(x, to: context.shape[0])
        // cross-attention
        x = attn2(norm2(x), context: context) + x
        // feed-forward
        x = ff(norm3(x)) + x
        return x
    }
}

/// diffusers' Transformer2DModel on continuous inputs: group norm, a projection in,
/// transformer blocks over the H*W pixels, a projection out, and a residual.
public final class Transformer2DModel: Layer {
    public let norm: GroupNorm
    public let projIn: Linear
    public let blocks: [BasicTransformerBlock]
    public let projOut: Linear
    /// Runs checkpointed (`Checkpoint`): keeps its inputs, not its activations, when trained.
    public var gradientCheckpointing = false

    public init(
        channels: Int, heads: Int, layers: Int, contextDim: Int, groups: Int,
        useLinearProjection: Bool, key: RandomKey?
    ) {
        let keys = key.split(layers + 2)
        norm = GroupNorm(groups: groups, channels: channels, eps: 1e-6)
        // SD 1.x stores the projections as 1x1 convs ([C, C, 1, 1]), SD 2.x as linears
        // (`use_linear_projection`): the same map over channels, applied to the pixel sequence.
        projIn = Linear(channels, channels, pointwiseConv: !useLinearProjection, key: keys[0])
        blocks = (0..<layers).map {
            BasicTransformerBlock(
                dim: channels, heads: heads, headDim: channels / heads,
                contextDim: contextDim, key: keys[$0 + 2])
        }
        projOut = Linear(channels, channels, pointwiseConv: !useLinearProjection, key: keys[1])
    }

    public var namedParameters: [(String, Tensor)] {
        scoped("norm", norm) + scoped("proj_in", projIn) + scoped("transformer_blocks", blocks)
            + scoped("proj_out", projOut)
    }

    /// x: [B, C, H, W], context: [B, S, contextDim] -> [B, C, H, W] (or N > B sequences of
    /// context -> [N, C, H, W], as a BasicTransformerBlock)
    public func callAsFunction(_ x: Tensor, context: Tensor) -> Tensor {
        guard gradientCheckpointing else { return forward(x, context: context) }
        return Checkpoint.run([x, context]) { self.forward($0[0], context: $0[1]) }
    }

    // proj_in and proj_out map between the [B, C, HW] map and [B, HW, C] token rows in
    // their GEMMs (a 1x1 convolution and a linear projection are the same map over
    // channels), and proj_out adds the residual: no transposed copies.
    func forward(_ x: Tensor, context: Tensor) -> Tensor {
        let (b, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        var hidden = projIn.tokens(fromMap: norm(x).reshaped([b, c, h * w]))  // [B, HW, C]
        for block in blocks { hidden = block(hidden, context: context) }
        let batch = hidden.shape[0]  // b, or more for shared samples
        let residual = repeatingBatch(x, to: batch).reshaped([batch, c, h * w])
        return projOut.map(fromTokens: hidden, adding: residual).reshaped([batch, c, h, w])
    }
}
