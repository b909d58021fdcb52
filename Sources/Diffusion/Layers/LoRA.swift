import Tensor

/// A low-rank adapter (Hu et al. 2021, "LoRA", eq. 3): h = W0 x + (alpha / r) B A x,
/// with A (`down`) drawn small and B (`up`) zero, so training starts at the base model.
/// Keys follow diffusers/peft: `lora_A.weight` (down), `lora_B.weight` (up).
///
/// On a linear layer A: [r, in], B: [out, r]. On a convolution, as peft does it, A is a
/// convolution with the base's kernel, stride and padding, [r, in, k, k], and B a 1x1
/// convolution [out, r, 1, 1].
///
/// The layer applies it merged, as one op with W0 + scale · B A: the same function as
/// peft's separate path (x A^T B^T), but at rank 32 on 32-64 channels that path costs as
/// much as the layer itself, forward and backward; the merged weight costs one small GEMM.
///
/// Switching adapters off makes the layers the frozen base again: the reference model of
/// DPO without a second copy of the weights.
public final class LoRA: Layer {
    public let down: Tensor
    public let up: Tensor
    public let scale: Float

    /// Set on a thread running the frozen base model (`LoRASet.withDisabled`). Per thread:
    /// one shard's reference pass runs while another shard's trained pass needs the
    /// adapters on (`DataParallel`).
    static let switchedOff = ThreadLocalInt(inherited: true)

    /// Whether the layer applies the adapter on this thread.
    public var isEnabled: Bool { LoRA.isSwitchedOn }

    /// Whether adapters apply on this thread (off inside `LoRASet.withDisabled`).
    public static var isSwitchedOn: Bool { switchedOff.value == 0 }

    /// How A starts (B always starts at zero).
    public enum Initialization: String, Sendable {
        /// U(-1/sqrt(fan_in), 1/sqrt(fan_in)): peft's default (Kaiming-uniform, a = sqrt 5).
        case kaimingUniform = "kaiming-uniform"
        /// N(0, 1/r): peft's `init_lora_weights="gaussian"`, what DUO's training uses.
        case gaussian
    }

    /// An adapter of `rank` for a linear layer in -> out, or for a convolution with
    /// `kernel`.
    public init(
        inFeatures: Int, outFeatures: Int, kernel: Int? = nil,
        rank: Int, alpha: Float, initialization: Initialization = .kaimingUniform, key: RandomKey
    ) {
        let downShape = [rank, inFeatures] + (kernel.map { [$0, $0] } ?? [])
        let count = downShape.reduce(1, *)
        switch initialization {
        case .kaimingUniform:
            let bound = 1 / Float(count / rank).squareRoot()
            down = Tensor.uniform(downShape, low: -bound, high: bound, key: key, requiresGrad: true)
        case .gaussian:
            let std = 1 / Float(rank)
            down = Tensor(
                key.normal(count: count).map { $0 * std }, shape: downShape, requiresGrad: true)
        }
        up = Tensor.zeros([outFeatures, rank] + (kernel == nil ? [] : [1, 1]), requiresGrad: true)
        scale = alpha / Float(rank)
    }

    public var rank: Int { down.shape[0] }

    public var namedParameters: [(String, Tensor)] {
        [("lora_A.weight", down), ("lora_B.weight", up)]
    }

    /// W0 + scale · B A shaped like `base` ([out, in], [out, in, 1, 1] or [out, in, k, k]):
    /// the weight the adapted layer applies, and what `duo merge` writes. Gradients reach
    /// A and B only.
    public func merged(with base: Tensor) -> Tensor { base + weightDelta.reshaped(base.shape) }

    /// scale · B A as a weight delta shaped like the base weight ([out, in] or
    /// [out, in, k, k]).
    var weightDelta: Tensor {
        let (out, r) = (up.shape[0], rank)
        let flatDown = down.reshaped([r, down.count / r])
        let delta = matmul(up.reshaped([out, r]), flatDown) * scale
        return delta.reshaped([out] + Array(down.shape.dropFirst()))
    }
}
