import Foundation
import Formats
import Tensor

/// LoRA adapter files in the format diffusers' `load_lora_weights` reads (peft keys under
/// `unet.`: `unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight`).
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
            try writer.add(
                "unet.\(name).lora_A.weight", shape: adapter.down.shape,
                values: adapter.down.scalars)
            let up = adapter.up.scalars.map { $0 * adapter.scale }
            try writer.add("unet.\(name).lora_B.weight", shape: adapter.up.shape, values: up)
        }
        try writer.write(to: path)
    }

    /// Attaches the adapter file at `path` to `unet` with strength `scale` (1: as trained):
    /// a LoRA file, or a UNet weights file (`load(_:into:)` with one file).
    public static func load(_ path: String, into unet: UNet2DConditionModel, scale: Float = 1)
        throws -> LoRASet
    {
        try load([AdapterFile(path: path, scale: scale)], into: unet)
    }

    /// Attaches the LoRA adapters of `path`. Every key must name a UNet layer and pair an A
    /// with a B of matching shapes.
    static func loadLoRA(_ path: String, into unet: UNet2DConditionModel, scale: Float)
        throws -> LoRASet
    {
        guard scale.isFinite else {
            throw ModelError(file: path, "cannot be applied at scale \(scale) (not finite)")
        }
        let file = try SafeTensorsReader(path: path)
        let layers = Dictionary(
            unet.adaptableLayers(Set(LoRATarget.allCases)), uniquingKeysWith: { a, _ in a })
        let names = try adaptedLayerNames(file)
        guard !names.isEmpty else {
            throw ModelError(file: path, "holds no UNet LoRA weights (keys unet.*.lora_A.weight)")
        }
        let trainedScale = try fileScale(file)
        var adapters: [(String, LoRA)] = []
        for name in names {
            let (downKey, upKey) = ("unet.\(name).lora_A.weight", "unet.\(name).lora_B.weight")
            guard let layer = layers[name] else {
                throw ModelError(file: path, key: downKey, "names no adaptable layer of this UNet")
            }
            guard file.contains(upKey) else {
                throw ModelError(file: path, key: upKey, "missing (every lora_A needs its lora_B)")
            }
            let (down, up) = (try file.info(downKey).shape, try file.info(upKey).shape)
            let rank = down[0]
            let adapter: LoRA
            switch layer {
            case .linear(let linear):
                guard down == [rank, linear.inFeatures], up == [linear.outFeatures, rank] else {
                    throw ModelError(
                        file: path, key: downKey,
                        "shapes \(down) and \(up) do not fit a \(linear.inFeatures) -> \(linear.outFeatures) layer"
                    )
                }
                adapter = LoRA(
                    inFeatures: linear.inFeatures, outFeatures: linear.outFeatures, rank: rank,
                    alpha: Float(rank) * scale * trainedScale, key: RandomKey(seed: 0))
                linear.lora = adapter
            case .conv(let conv):
                let k = conv.kernel
                guard down == [rank, conv.inChannels, k, k], up == [conv.outChannels, rank, 1, 1]
                else {
                    throw ModelError(
                        file: path, key: downKey,
                        "shapes \(down) and \(up) do not fit a \(k)x\(k) convolution \(conv.inChannels) -> \(conv.outChannels)"
                    )
                }
                adapter = LoRA(
                    inFeatures: conv.inChannels, outFeatures: conv.outChannels, kernel: k,
                    rank: rank,
                    alpha: Float(rank) * scale * trainedScale, key: RandomKey(seed: 0))
                conv.lora = adapter
            }
            try adapter.down.withUnsafeMutableBufferPointer { try file.read(downKey, into: $0) }
            try adapter.up.withUnsafeMutableBufferPointer { try file.read(upKey, into: $0) }
            for (key, tensor) in [(downKey, adapter.down), (upKey, adapter.up)]
            where !tensor.scalars.allSatisfy(\.isFinite) {
                throw ModelError(file: path, key: key, "holds NaN or infinite values")
            }
            adapters.append((name, adapter))
        }
        return LoRASet(adapters: adapters)
    }

    /// The layer names of the file's `unet.*.lora_A.weight` keys, in file order; other
    /// LoRA keys (a text encoder's) are refused rather than silently dropped.
    static func adaptedLayerNames(_ file: SafeTensorsReader) throws -> [String] {
        var names: [String] = []
        for tensor in file.tensors {
            let key = tensor.name
            if key.hasPrefix("unet."), key.hasSuffix(".lora_A.weight") {
                names.append(String(key.dropFirst(5).dropLast(".lora_A.weight".count)))
            } else if !(key.hasPrefix("unet.") && key.hasSuffix(".lora_B.weight")) {
                throw ModelError(
                    file: file.path, key: key,
                    "is not a UNet LoRA weight (only unet.*.lora_A/lora_B.weight are supported)")
            }
        }
        return names
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
        let layers = Dictionary(
            unet.adaptableLayers(Set(LoRATarget.allCases)), uniquingKeysWith: { a, _ in a })
        for (name, adapter) in adapters {
            let weight: Tensor
            switch layers[name]! {
            case .linear(let linear): weight = linear.weight
            case .conv(let conv): weight = conv.weight
            }
            let merged = GradMode.withNoGrad { adapter.merged(with: weight) }
            guard merged.scalars.allSatisfy(\.isFinite) else {
                detach(from: unet)
                throw ModelError(
                    file: "unet", key: name,
                    "merging the adapter gives non-finite weights (adapter scale \(adapter.scale))")
            }
            weight.assign(merged)
        }
        weightEdits.keep()
        detach(from: unet)
    }
}
