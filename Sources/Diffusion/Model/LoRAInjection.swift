import Formats
import Tensor

/// Which layers get adapters, by the names peft's `target_modules` use for SD.
public enum LoRATarget: String, CaseIterable, Hashable, Sendable {
    /// attn1 to_q, to_k, to_v, to_out.0 (DUO's choice: `--no_cross_attn`).
    case selfAttention = "self-attention"
    /// attn2 to_q, to_k, to_v, to_out.0.
    case crossAttention = "cross-attention"
    /// ff.net.0.proj and ff.net.2 of the transformer blocks.
    case feedForward = "feed-forward"
    /// conv1 and conv2 of the ResNet blocks.
    case convs
    /// q_proj, k_proj, v_proj and out_proj of every CLIP text-encoder layer: the module
    /// AdvUnlearn (Zhang et al. 2024) trains, where a prompt's adversarial tokens enter.
    case textEncoder = "text-encoder"

    /// Every target's name, for errors that list what is known.
    public static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }
}

/// A layer an adapter can be attached to.
public enum AdaptableLayer {
    case linear(Linear)
    case conv(Conv2d)
}

/// LoRA adapters on UNet and text-encoder layers, as diffusers/peft place them for Stable
/// Diffusion. The base weights stay frozen; switching the adapters off gives back the
/// original model, which DUO uses as its reference. Adapter files loaded together may also
/// carry UNet weights files' edits, which detaching undoes.
public final class LoRASet: Layer {
    /// (key of the adapted layer, its adapter), in model order: UNet layers by their
    /// diffusers key (`down_blocks.1.attentions.0...attn1.to_q`), text-encoder layers under
    /// `text_encoder.` as diffusers' LoRA files name them.
    public let adapters: [(String, LoRA)]
    /// The UNet parameters that loaded UNet weights files overwrote (none for fresh adapters).
    public let weightEdits: UNetWeightEdits
    /// The text encoder the set may hold adapters of (nil: UNet adapters only).
    let textEncoder: CLIPTextModel?
    /// The files the set was loaded from (none for fresh adapters), named by its errors.
    public internal(set) var files: [String] = []

    init(
        adapters: [(String, LoRA)], weightEdits: UNetWeightEdits = UNetWeightEdits(),
        textEncoder: CLIPTextModel? = nil
    ) {
        self.adapters = adapters
        self.weightEdits = weightEdits
        self.textEncoder = textEncoder
    }

    /// Whether any adapter sits in the text encoder: prompts' encodings then depend on the
    /// adapters and cannot be computed once.
    public var adaptsTextEncoder: Bool { adapters.contains { isTextEncoderKey($0.0) } }

    /// Adds fresh adapters of `rank` with scale alpha / rank on the `targets`, and freezes
    /// the UNet and the text encoder (which `.textEncoder` needs).
    public static func inject(
        into unet: UNet2DConditionModel, textEncoder: CLIPTextModel? = nil,
        targets: Set<LoRATarget> = [.selfAttention, .crossAttention], rank: Int, alpha: Float,
        initialization: LoRA.Initialization = .kaimingUniform, key: RandomKey
    ) -> LoRASet {
        precondition(
            !targets.contains(.textEncoder) || textEncoder != nil,
            "the text-encoder target needs the text encoder")
        unet.setTrainable(false)
        if targets.contains(.textEncoder) { textEncoder?.setTrainable(false) }
        let layers = adaptableLayers(unet: unet, textEncoder: textEncoder, targets: targets)
        let adapters = zip(layers, key.split(layers.count)).map { named, key -> (String, LoRA) in
            let (name, layer) = named
            switch layer {
            case .linear(let linear):
                let adapter = LoRA(
                    inFeatures: linear.inFeatures, outFeatures: linear.outFeatures,
                    rank: rank, alpha: alpha, initialization: initialization, key: key)
                linear.lora = adapter
                return (name, adapter)
            case .conv(let conv):
                let adapter = LoRA(
                    inFeatures: conv.inChannels, outFeatures: conv.outChannels, kernel: conv.kernel,
                    rank: rank, alpha: alpha, initialization: initialization, key: key)
                conv.lora = adapter
                return (name, adapter)
            }
        }
        return LoRASet(adapters: adapters, textEncoder: textEncoder)
    }

    /// The layers of `targets` in `unet` and, for `.textEncoder`, in `textEncoder`, by the
    /// keys `adapters` uses.
    static func adaptableLayers(
        unet: UNet2DConditionModel, textEncoder: CLIPTextModel?, targets: Set<LoRATarget>
    ) -> [(String, AdaptableLayer)] {
        let text =
            targets.contains(.textEncoder)
            ? (textEncoder?.adaptableLayers ?? []).map { ($0.0, AdaptableLayer.linear($0.1)) } : []
        return unet.adaptableLayers(targets) + text
    }

    /// Removes the adapters from `unet` (and the set's text encoder) and restores the
    /// weights files' edits (their layers compute the base again).
    public func detach(from unet: UNet2DConditionModel) {
        weightEdits.restore()
        let layers = Self.adaptableLayers(
            unet: unet, textEncoder: textEncoder, targets: Set(LoRATarget.allCases))
        for (_, layer) in layers {
            switch layer {
            case .linear(let linear): linear.lora = nil
            case .conv(let conv): conv.lora = nil
            }
        }
    }

    /// The trainable parameters, under peft's keys (`...to_q.lora_A.weight`).
    public var namedParameters: [(String, Tensor)] {
        adapters.flatMap { name, adapter in scoped(name, adapter) }
    }

    /// Runs `body` with the adapters off: the reference model, without a second copy.
    /// Only on the calling thread, where every adapter is off while `body` runs.
    public func withDisabled<R>(_ body: () throws -> R) rethrows -> R {
        try LoRA.switchedOff.with(1, body)
    }
}

extension UNet2DConditionModel {
    /// The layers of `targets`, by diffusers key, in model order.
    public func adaptableLayers(_ targets: Set<LoRATarget>) -> [(String, AdaptableLayer)] {
        func resnets(_ prefix: String, _ list: [ResnetBlock2D]) -> [(String, AdaptableLayer)] {
            guard targets.contains(.convs) else { return [] }
            return list.enumerated().flatMap { i, resnet in
                [
                    ("\(prefix).resnets.\(i).conv1", AdaptableLayer.conv(resnet.conv1)),
                    ("\(prefix).resnets.\(i).conv2", .conv(resnet.conv2)),
                ]
            }
        }
        func transformers(_ prefix: String, _ list: [Transformer2DModel]) -> [(
            String, AdaptableLayer
        )] {
            list.enumerated().flatMap { i, transformer in
                transformer.blocks.enumerated().flatMap { j, block -> [(String, AdaptableLayer)] in
                    let base = "\(prefix).attentions.\(i).transformer_blocks.\(j)"
                    var layers: [(String, AdaptableLayer)] = []
                    if targets.contains(.selfAttention) {
                        layers += block.attn1.projections.map {
                            ("\(base).attn1.\($0.0)", .linear($0.1))
                        }
                    }
                    if targets.contains(.crossAttention) {
                        layers += block.attn2.projections.map {
                            ("\(base).attn2.\($0.0)", .linear($0.1))
                        }
                    }
                    if targets.contains(.feedForward) {
                        layers += [
                            ("\(base).ff.net.0.proj", .linear(block.ff.projIn)),
                            ("\(base).ff.net.2", .linear(block.ff.projOut)),
                        ]
                    }
                    return layers
                }
            }
        }
        let down = downBlocks.enumerated().flatMap { i, block in
            resnets("down_blocks.\(i)", block.resnets)
                + transformers("down_blocks.\(i)", block.attentions)
        }
        let mid =
            resnets("mid_block", midBlock.resnets) + transformers("mid_block", midBlock.attentions)
        let up = upBlocks.enumerated().flatMap { i, block in
            resnets("up_blocks.\(i)", block.resnets)
                + transformers("up_blocks.\(i)", block.attentions)
        }
        return down + mid + up
    }

    /// Every attention projection of the transformer blocks, by diffusers key.
    public var attentionProjections: [(String, Linear)] {
        adaptableLayers([.selfAttention, .crossAttention]).compactMap {
            if case .linear(let layer) = $0.1 { return ($0.0, layer) }
            return nil
        }
    }
}

/// Whether an adapter key names a text-encoder layer (`text_encoder.`) rather than a UNet one.
func isTextEncoderKey(_ name: String) -> Bool { name.hasPrefix("text_encoder.") }

extension CLIPTextModel {
    /// The attention projections of every layer, by the keys of diffusers' LoRA files
    /// (`text_encoder.text_model.encoder.layers.0.self_attn.q_proj`: the transformers v4
    /// name, which diffusers also reads under transformers v5).
    public var adaptableLayers: [(String, Linear)] {
        layers.enumerated().flatMap { i, layer in
            [
                ("q_proj", layer.qProj), ("k_proj", layer.kProj), ("v_proj", layer.vProj),
                ("out_proj", layer.outProj),
            ].map { ("text_encoder.text_model.encoder.layers.\(i).self_attn.\($0.0)", $0.1) }
        }
    }
}

extension Attention {
    /// The four projections by their diffusers names.
    public var projections: [(String, Linear)] {
        [("to_q", toQ), ("to_k", toK), ("to_v", toV), ("to_out.0", toOut)]
    }
}
