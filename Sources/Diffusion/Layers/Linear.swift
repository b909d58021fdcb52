import Foundation
import Tensor

/// y = x W^T + b, as torch.nn.Linear. weight: [out, in], bias: [out].
///
/// A 1x1 convolution is the same map over channels: with `pointwiseConv` the weight is
/// kept as the conv's [out, in, 1, 1] (as checkpoints store it) and applied to [..., in].
public final class Linear: Layer {
    public let weight: Tensor
    public let bias: Tensor?
    /// A low-rank adapter, merged into the weight when present and enabled.
    public var lora: LoRA?

    /// PyTorch's default initialization: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias
    /// (zeros with a nil key, for loading).
    public init(
        _ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, pointwiseConv: Bool = false,
        key: RandomKey?
    ) {
        let bound = 1 / Float(inFeatures).squareRoot()
        let keys = key.split(2)
        weight = initialUniform(
            [outFeatures, inFeatures] + (pointwiseConv ? [1, 1] : []),
            bound: bound, key: keys[0])
        self.bias = bias ? initialUniform([outFeatures], bound: bound, key: keys[1]) : nil
    }

    public var inFeatures: Int { weight.shape[1] }
    public var outFeatures: Int { weight.shape[0] }

    public var namedParameters: [(String, Tensor)] {
        [("weight", weight)] + (bias.map { [("bias", $0)] } ?? [])
    }

    /// x: [..., in] -> [..., out]
    public func callAsFunction(_ x: Tensor) -> Tensor {
        linear(x, weight: matrix, bias: bias)
    }

    /// x: [B, in, P], a channels-first map of P pixels -> [B, P, out]: the layer applied to
    /// every pixel, written as token rows.
    public func tokens(fromMap x: Tensor) -> Tensor {
        pointwiseToTokens(x, weight: matrix, bias: bias)
    }

    /// t: [N, P, in] token rows -> [N, out, P], a channels-first map, plus `residual`
    /// ([N, out, P]; nil: none).
    public func map(fromTokens t: Tensor, adding residual: Tensor? = nil) -> Tensor {
        pointwiseFromTokens(t, weight: matrix, bias: bias, residual: residual)
    }

    /// The weight as [out, in], with the adapter merged in when present and enabled.
    private var matrix: Tensor {
        let matrix = weight.rank == 2 ? weight : weight.reshaped([outFeatures, inFeatures])
        guard let lora, lora.isEnabled else { return matrix }
        return lora.merged(with: matrix)
    }
}
