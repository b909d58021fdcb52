import Formats
import Tensor

/// LoRA adapters on the UNet's attention projections (`to_q`, `to_k`, `to_v`,
/// `to_out.0` of every self- and cross-attention), as diffusers/peft place them for
/// Stable Diffusion. The base weights stay frozen; switching the adapters off gives back
/// the original model, which DUO uses as its reference.
public final class LoRASet: Layer {
    /// (diffusers key of the adapted projection, its adapter), in model order.
    public let adapters: [(String, LoRA)]

    init(adapters: [(String, LoRA)]) { self.adapters = adapters }

    /// Adds fresh adapters of `rank` with scale alpha / rank, and freezes the UNet.
    public static func inject(
        into unet: UNet2DConditionModel, rank: Int, alpha: Float, key: RandomKey
    ) -> LoRASet {
        unet.setTrainable(false)
        let projections = unet.attentionProjections
        let keys = key.split(projections.count)
        let adapters = zip(projections, keys).map { projection, key -> (String, LoRA) in
            let (name, layer) = projection
            let adapter = LoRA(inFeatures: layer.inFeatures, outFeatures: layer.outFeatures,
                               rank: rank, alpha: alpha, key: key)
            layer.lora = adapter
            return (name, adapter)
        }
        return LoRASet(adapters: adapters)
    }

    /// The trainable parameters, under peft's keys (`...to_q.lora_A.weight`).
    public var namedParameters: [(String, Tensor)] {
        adapters.flatMap { name, adapter in scoped(name, adapter) }
    }

    /// Turns every adapter on or off (off: the frozen base model).
    public func setEnabled(_ enabled: Bool) {
        for (_, adapter) in adapters { adapter.isEnabled = enabled }
    }

    /// Runs `body` with the adapters off: the reference model, without a second copy.
    public func withDisabled<R>(_ body: () throws -> R) rethrows -> R {
        setEnabled(false)
        defer { setEnabled(true) }
        return try body()
    }
}

extension UNet2DConditionModel {
    /// Every attention projection of the transformer blocks, by diffusers key.
    public var attentionProjections: [(String, Linear)] {
        func transformers(_ prefix: String, _ list: [Transformer2DModel]) -> [(String, Linear)] {
            list.enumerated().flatMap { i, transformer in
                transformer.blocks.enumerated().flatMap { j, block in
                    let base = "\(prefix).attentions.\(i).transformer_blocks.\(j)"
                    return block.attn1.projections.map { ("\(base).attn1.\($0.0)", $0.1) }
                        + block.attn2.projections.map { ("\(base).attn2.\($0.0)", $0.1) }
                }
            }
        }
        let down = downBlocks.enumerated().flatMap { transformers("down_blocks.\($0.offset)", $0.element.attentions) }
        let mid = transformers("mid_block", midBlock.attentions)
        let up = upBlocks.enumerated().flatMap { transformers("up_blocks.\($0.offset)", $0.element.attentions) }
        return down + mid + up
    }
}

extension Attention {
    /// The four projections by their diffusers names.
    public var projections: [(String, Linear)] {
        [("to_q", toQ), ("to_k", toK), ("to_v", toV), ("to_out.0", toOut)]
    }
}
