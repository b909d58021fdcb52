import Tensor

/// torch.nn.GroupNorm with affine weight (ones) and bias (zeros).
public final class GroupNorm: Layer {
    public let groups: Int
    public let eps: Float
    public let weight: Tensor
    public let bias: Tensor

    public init(groups: Int, channels: Int, eps: Float = 1e-5) {
        self.groups = groups
        self.eps = eps
        weight = Tensor.ones([channels])
        bias = Tensor.zeros([channels])
    }

    public var namedParameters: [(String, Tensor)] { [("weight", weight), ("bias", bias)] }

    /// x: [B, C, ...] -> same shape
    public func callAsFunction(_ x: Tensor) -> Tensor {
        groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps)
    }

    /// silu(self(x)) as one op (`groupNormSiLU`).
    public func silu(_ x: Tensor) -> Tensor {
        groupNormSiLU(x, groups: groups, weight: weight, bias: bias, eps: eps)
    }
}

/// torch.nn.LayerNorm over the last dimension, with affine weight and bias.
public final class LayerNorm: Layer {
    public let eps: Float
    public let weight: Tensor
    public let bias: Tensor

    public init(_ dim: Int, eps: Float = 1e-5) {
        self.eps = eps
        weight = Tensor.ones([dim])
        bias = Tensor.zeros([dim])
    }

    public var namedParameters: [(String, Tensor)] { [("weight", weight), ("bias", bias)] }

    /// x: [..., D] -> same shape
    public func callAsFunction(_ x: Tensor) -> Tensor {
        layerNorm(x, weight: weight, bias: bias, eps: eps)
    }
}
