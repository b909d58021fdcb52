import Tensor

/// A low-rank adapter (Hu et al. 2021, "LoRA", eq. 3): h = W0 x + (alpha / r) B A x,
/// with A: [r, in] (`down`) drawn small and B: [out, r] (`up`) zero, so training starts at
/// the base model. Keys follow diffusers/peft: `lora_A.weight` (down), `lora_B.weight` (up).
///
/// Switching it off makes the layer the frozen base again: the reference model of DPO
/// without a second copy of the weights.
public final class LoRA: Layer {
    public let down: Tensor
    public let up: Tensor
    public let scale: Float
    public var isEnabled = true

    /// down ~ U(-1/sqrt(in), 1/sqrt(in)) (Kaiming-uniform as peft), up = 0.
    public init(inFeatures: Int, outFeatures: Int, rank: Int, alpha: Float, key: RandomKey) {
        let bound = 1 / Float(inFeatures).squareRoot()
        down = Tensor.uniform([rank, inFeatures], low: -bound, high: bound, key: key,
                              requiresGrad: true)
        up = Tensor.zeros([outFeatures, rank], requiresGrad: true)
        scale = alpha / Float(rank)
    }

    public var rank: Int { down.shape[0] }

    public var namedParameters: [(String, Tensor)] {
        [("lora_A.weight", down), ("lora_B.weight", up)]
    }

    /// x: [..., in] -> [..., out], the adapter's contribution alone.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        linear(linear(x, weight: down), weight: up) * scale
    }
}
