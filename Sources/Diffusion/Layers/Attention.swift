import Tensor

/// Multi-head attention as diffusers' `Attention`: projections `to_q`, `to_k`, `to_v`
/// and `to_out.0`, on sequences [B, T, C].
public final class Attention: Layer {
    public let heads: Int
    public let toQ: Linear
    public let toK: Linear
    public let toV: Linear
    public let toOut: Linear

    /// queryDim: C of the sequence; contextDim: C of the keys' sequence (cross-attention)
    /// or nil for self-attention; projections without bias as in the UNet unless `bias`.
    public init(
        queryDim: Int, contextDim: Int? = nil, heads: Int, headDim: Int, bias: Bool = false,
        key: RandomKey?
    ) {
        let inner = heads * headDim
        let keys = key.split(4)
        self.heads = heads
        toQ = Linear(queryDim, inner, bias: bias, key: keys[0])
        toK = Linear(contextDim ?? queryDim, inner, bias: bias, key: keys[1])
        toV = Linear(contextDim ?? queryDim, inner, bias: bias, key: keys[2])
        toOut = Linear(inner, queryDim, key: keys[3])
    }

    public var namedParameters: [(String, Tensor)] {
        scoped("to_q", toQ) + scoped("to_k", toK) + scoped("to_v", toV) + scoped("to_out.0", toOut)
    }

    /// x: [B, T, C], context: [B, S, Cctx] or nil (self-attention) -> [B, T, C]
    public func callAsFunction(_ x: Tensor, context: Tensor? = nil) -> Tensor {
        let source = context ?? x
        let out = scaledDotProductAttention(
            query: toQ(x), key: toK(source), value: toV(source), heads: heads)
        return toOut(out)
    }
}

/// The spatial self-attention of the VAE's and UNetMidBlock2D's middle: group norm, one
/// attention over the H*W pixels, a residual (diffusers' `Attention` with `group_norm`
/// and `residual_connection=True`).
public final class SpatialSelfAttention: Layer {
    public let groupNorm: GroupNorm
    public let attention: Attention

    public init(channels: Int, heads: Int, groups: Int, eps: Float, key: RandomKey?) {
        groupNorm = GroupNorm(groups: groups, channels: channels, eps: eps)
        attention = Attention(
            queryDim: channels, heads: heads, headDim: channels / heads,
            bias: true, key: key)
    }

    public var namedParameters: [(String, Tensor)] {
        scoped("group_norm", groupNorm) + attention.namedParameters
    }

    /// Older checkpoints name the projections query/key/value/proj_attn.
    static func legacyName(_ key: String) -> [String] {
        let renames = [
            ("to_q.", "query."), ("to_k.", "key."), ("to_v.", "value."),
            ("to_out.0.", "proj_attn."),
        ]
        return renames.compactMap { new, old in
            key.contains(new) ? key.replacingOccurrences(of: new, with: old) : nil
        }
    }

    /// x: [B, C, H, W] -> same shape
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let (b, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let sequence = groupNorm(x).reshaped([b, c, h * w]).transposed(1, 2)  // [B, HW, C]
        let attended = attention(sequence).transposed(1, 2).reshaped([b, c, h, w])
        return attended + x
    }
}
