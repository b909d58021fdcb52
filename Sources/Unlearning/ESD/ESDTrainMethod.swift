import Diffusion

/// Which UNet parameters ESD fine-tunes, by the names of its reference
/// (rohitgandikota/erasing at b8aeab6, train-scripts/train-esd.py l.164-182, `--train_method`).
///
/// The reference filters the CompVis UNet's parameter names; here the same filter is written
/// on diffusers' keys. CompVis `out.*` (the last GroupNorm and convolution) is diffusers'
/// `conv_norm_out` and `conv_out`, `time_embed.*` is `time_embedding.*` (the ResNet blocks'
/// `emb_layers`, diffusers' `time_emb_proj`, stay trained), and `attn2` (cross-attention) is
/// `attn2` in both. tools/make_esd_reference_fixture.py applies the reference's own filter
/// to its own UNetModel and maps the names with diffusers' converter; a test holds this one
/// to that list.
public enum ESDTrainMethod: String, CaseIterable, Sendable {
    /// ESD-u: every parameter except cross-attention, the time embedding and the output
    /// layers (l.167-172), for concepts not tied to a word (nudity).
    case noxattn
    /// ESD-x: cross-attention only (l.179-182), for concepts named by a prompt (styles).
    case xattn

    /// Whether the parameter with diffusers key `name` is trained.
    public func trains(_ name: String) -> Bool {
        switch self {
        case .noxattn:
            let excluded = ["conv_norm_out.", "conv_out.", "time_embedding."]
            return !name.contains("attn2") && !excluded.contains { name.hasPrefix($0) }
        case .xattn:
            return name.contains("attn2")
        }
    }

    /// The LoRA targets that come closest to the same layers, for ESD with a LoRA: ESD-u's
    /// self-attention, feed-forward and ResNet convolutions; ESD-x's cross-attention.
    public var loraTargets: Set<LoRATarget> {
        switch self {
        case .noxattn: return [.selfAttention, .feedForward, .convs]
        case .xattn: return [.crossAttention]
        }
    }

    /// "ESD-u" or "ESD-x", as the paper names them.
    public var paperName: String { self == .noxattn ? "ESD-u" : "ESD-x" }
}
