import Foundation
import Formats
import Tensor

/// LoRA adapter files in the format diffusers' `load_lora_weights` reads (peft keys under
/// `unet.`: `unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight`,
/// and under `text_encoder.` for the text encoder's:
/// `text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight`, or without
/// `text_model.` as diffusers writes them under transformers v5).
///
/// The scale alpha / r is folded into B on writing, so that a reader that assumes
/// alpha = r (diffusers, with no alphas in the file) computes the same update; the trained
/// rank, alpha and targets are kept in the metadata for people.
public enum LoRAFile {
    /// Writes `set` to `path` atomically.
    public static func save(_ set: LoRASet, to path: String, metadata: [String: String] = [:])
        throws
    {
        var writer = SafeTensorsWriter(metadata: metadata.merging(["format": "pt"]) { a, _ in a })
        for (name, adapter) in set.adapters {
            let key = isTextEncoderKey(name) ? name : "unet.\(name)"
            try writer.add(
                "\(key).lora_A.weight", shape: adapter.down.shape, values: adapter.down.scalars)
            let up = adapter.up.scalars.map { $0 * adapter.scale }
            try writer.add("\(key).lora_B.weight", shape: adapter.up.shape, values: up)
        }
        try writer.write(to: path)
    }

    /// Attaches the adapter file at `path` to `unet` (and `textEncoder`, for a file that
    /// adapts it) with strength `scale` (1: as trained): a LoRA file, or a UNet weights file
    /// (`load(_:into:textEncoder:)` with one file).
    public static func load(
        _ path: String, into unet: UNet2DConditionModel, textEncoder: CLIPTextModel? = nil,
        scale: Float = 1
    ) throws -> LoRASet {
        try load([AdapterFile(path: path, scale: scale)], into: unet, textEncoder: textEncoder)
    }

    /// Attaches the LoRA adapters of `path`. Every key must name a UNet layer, or a layer of
    /// `textEncoder`, and pair an A with a B of matching shapes.
    static func loadLoRA(
        _ path: String, into unet: UNet2DConditionModel, textEncoder: CLIPTextModel?,
        scale: Float
    ) throws -> LoRASet {
        guard scale.isFinite else {
            throw ModelError(file: path, "cannot be applied at scale \(scale) (not finite)")
        }
        let file = try SafeTensorsReader(path: path)
        let layers = Dictionary(
            LoRASet.adaptableLayers(
                unet: unet, textEncoder: textEncoder, targets: Set(LoRATarget.allCases)),
            uniquingKeysWith: { a, _ in a })
        let names = try adaptedLayers(file)
        guard !names.isEmpty else {
            throw ModelError(file: path, "holds no UNet LoRA weights (keys unet.*.lora_A.weight)")
        }
        let trainedScale = try fileScale(file)
        var adapters: [(String, LoRA)] = []
        for (name, prefix) in names {
            let (downKey, upKey) = ("\(prefix).lora_A.weight", "\(prefix).lora_B.weight")
            guard let layer = layers[name] else {
                let model =
                    !isTextEncoderKey(name)
                    ? "this UNet"
                    : textEncoder == nil
                        ? "the UNet (this command adapts the UNet only)" : "this text encoder"
                throw ModelError(file: path, key: downKey, "names no adaptable layer of \(model)")
            }
            guard file.contains(upKey) else {
                throw ModelError(file: path, key: upKey, "missing (every lora_A needs its lora_B)")
            }
            let (down, up) = (try file.info(downKey).shape, try file.info(upKey).shape)
            guard let rank = down.first, rank > 0 else {
                throw ModelError(
                    file: path, key: downKey,
                    "has shape \(down); expected [rank, ...] with rank >= 1")
            }
            let adapter = try attach(
                to: layer, down: down, up: up, alpha: Float(rank) * scale * trainedScale,
                file: path, key: downKey)
            try adapter.down.withUnsafeMutableBufferPointer { try file.read(downKey, into: $0) }
            try adapter.up.withUnsafeMutableBufferPointer { try file.read(upKey, into: $0) }
            for (key, tensor) in [(downKey, adapter.down), (upKey, adapter.up)]
            where !tensor.scalars.allSatisfy(\.isFinite) {
                throw ModelError(file: path, key: key, "holds NaN or infinite values")
            }
            adapters.append((name, adapter))
        }
        return LoRASet(adapters: adapters, textEncoder: textEncoder)
    }

    /// A LoRA of the file's shapes (`down` [rank, in(, k, k)], `up` [out, rank(, 1, 1)])
    /// attached to `layer`, its weights still to be read; shapes that do not fit the layer
    /// are an error naming the file's `key`.
    static func attach(
        to layer: AdaptableLayer, down: [Int], up: [Int], alpha: Float, file path: String,
        key: String
    ) throws -> LoRA {
        let rank = down[0]
        switch layer {
        case .linear(let linear):
            guard down == [rank, linear.inFeatures], up == [linear.outFeatures, rank] else {
                throw ModelError(
                    file: path, key: key,
                    "shapes \(down) and \(up) do not fit a \(linear.inFeatures) -> \(linear.outFeatures) layer"
                )
            }
            let adapter = LoRA(
                inFeatures: linear.inFeatures, outFeatures: linear.outFeatures, rank: rank,
                alpha: alpha, key: RandomKey(seed: 0))
            linear.lora = adapter
            return adapter
        case .conv(let conv):
            let k = conv.kernel
            guard down == [rank, conv.inChannels, k, k], up == [conv.outChannels, rank, 1, 1]
            else {
                throw ModelError(
                    file: path, key: key,
                    "shapes \(down) and \(up) do not fit a \(k)x\(k) convolution \(conv.inChannels) -> \(conv.outChannels)"
                )
            }
            let adapter = LoRA(
                inFeatures: conv.inChannels, outFeatures: conv.outChannels, kernel: k,
                rank: rank, alpha: alpha, key: RandomKey(seed: 0))
            conv.lora = adapter
            return adapter
        }
    }

    /// The adapted layers of the file's `*.lora_A.weight` keys, in file order: each layer's
    /// key in a `LoRASet` and the prefix of its keys in the file. Keys outside `unet.` and
    /// `text_encoder.` are refused rather than silently dropped.
    static func adaptedLayers(_ file: SafeTensorsReader) throws -> [(name: String, prefix: String)]
    {
        var layers: [(String, String)] = []
        for tensor in file.tensors {
            let key = tensor.name
            let known = key.hasPrefix("unet.") || isTextEncoderKey(key)
            if known, key.hasSuffix(".lora_A.weight") {
                let prefix = String(key.dropLast(".lora_A.weight".count))
                layers.append((layerName(prefix), prefix))
            } else if !(known && key.hasSuffix(".lora_B.weight")) {
                throw ModelError(
                    file: file.path, key: key,
                    "is not a LoRA weight (unet.*. or text_encoder.*.lora_A/lora_B.weight)")
            }
        }
        return layers
    }

    /// A file key's prefix as a `LoRASet` key: a UNet layer without `unet.`, a text-encoder
    /// layer with `text_encoder.text_model.` (transformers v5's files leave out `text_model.`).
    static func layerName(_ prefix: String) -> String {
        if prefix.hasPrefix("unet.") { return String(prefix.dropFirst(5)) }
        let rest = prefix.dropFirst("text_encoder.".count)
        return rest.hasPrefix("text_model.") ? prefix : "text_encoder.text_model." + rest
    }

    /// alpha / r from diffusers' `lora_adapter_metadata` when a file carries it (files
    /// written by diffusers' own trainers); 1 otherwise (ours fold it into B).
    static func fileScale(_ file: SafeTensorsReader) throws -> Float {
        guard let text = file.metadata["lora_adapter_metadata"] else { return 1 }
        guard let config = try? JSONParser.parse(Array(text.utf8)),
            let alpha = config["lora_alpha"]?.double, let rank = config["r"]?.double, rank > 0,
            alpha.isFinite, rank.isFinite
        else {
            throw ModelError(
                file: file.path, key: "lora_adapter_metadata",
                "unreadable (expected JSON with lora_alpha and r)")
        }
        return Float(alpha / rank)
    }
}

extension LoRASet {
    /// Adds each adapter's scale · B A into its base layer's weight, for good, and keeps the
    /// UNet weights files' edits: the fused model that `duo merge` writes. The adapters are
    /// detached afterwards. A sum that overflows to infinity (a huge scale) is an error
    /// naming the layer.
    public func merge(into unet: UNet2DConditionModel) throws {
        // The adapters add onto the edited weights, also after a `detach` restored them.
        weightEdits.apply()
        let layers = Dictionary(
            Self.adaptableLayers(
                unet: unet, textEncoder: textEncoder, targets: Set(LoRATarget.allCases)),
            uniquingKeysWith: { a, _ in a })
        for (name, adapter) in adapters {
            let weight: Tensor
            switch layers[name]! {
            case .linear(let linear): weight = linear.weight
            case .conv(let conv): weight = conv.weight
            }
            let merged = GradMode.withNoGrad { adapter.merged(with: weight) }
            guard merged.scalars.allSatisfy(\.isFinite) else {
                detach(from: unet)
                let model = isTextEncoderKey(name) ? "text_encoder" : "unet"
                throw ModelError(
                    file: files.isEmpty ? model : files.joined(separator: " + "), key: name,
                    "merging gives non-finite weights in the \(model) (the adapter's scale "
                        + "\(adapter.scale): alpha/rank times the scale it was given)")
            }
            weight.assign(merged)
        }
        weightEdits.keep()
        detach(from: unet)
    }
}
