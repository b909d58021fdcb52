import Foundation
import Formats
import Tensor

/// UNet weights files: a partial diffusers `UNet2DConditionModel` state_dict in safetensors,
/// keys as diffusers names the parameters (`down_blocks.0.attentions.0.transformer_blocks.0
/// .attn2.to_k.weight`), values the parameters' new full values. Methods that change the
/// UNet's weights directly (ESD at full rank, UCE's closed-form edit) write them; their
/// authors release the same thing as a whole state_dict, which reads the same way.
///
/// Applied with strength s as W ← W_base + s · (W_file − W_base) per key, W_base the
/// model's own weights before any adapter, so several files (and LoRA files) stack.
/// Readers tell these files from LoRA files by their keys (`AdapterKind`).
public enum UNetWeightsFile {
    /// The metadata that marks the format for people and tools; readers go by the keys.
    public static let formatMetadata = [
        "format": "pt", "duo_content": "unet-weights",
        "duo_content_description":
            "partial diffusers UNet2DConditionModel state_dict: the new full values of the parameters it changes",
    ]

    /// Writes `parameters` (diffusers UNet keys, new full values) to `path` atomically, as
    /// float32; `metadata` joins the format's own entries.
    public static func save(
        _ parameters: [(String, Tensor)], to path: String, metadata: [String: String] = [:]
    ) throws {
        var writer = SafeTensorsWriter(
            metadata: metadata.merging(formatMetadata) { _, format in format })
        for (key, tensor) in parameters {
            try writer.add(key, shape: tensor.shape, values: tensor.scalars)
        }
        try writer.write(to: path)
    }

    /// Sets the parameters the `files` name to W_base + Σᵢ sᵢ (Wᵢ − W_base), W_base the
    /// UNet's weights now; nothing changes unless every file and result checks out. Keys
    /// whose values equal the base (the rest of a whole state_dict) are skipped.
    public static func apply(_ files: [AdapterFile], to unet: UNet2DConditionModel) throws
        -> UNetWeightEdits
    {
        let parameters = unet.namedParameters
        let byKey = Dictionary(parameters, uniquingKeysWith: { a, _ in a })
        var changes: [String: [(scale: Float, values: [Float])]] = [:]
        for file in files {
            guard file.scale.isFinite else {
                throw ModelError(
                    file: file.path, "cannot be applied at scale \(file.scale) (not finite)")
            }
            for (key, values) in try changedValues(file.path, byKey) {
                changes[key, default: []].append((file.scale, values))
            }
        }
        let paths = files.map(\.path).joined(separator: " + ")
        var edits: [(String, Tensor, [Float])] = []
        for (key, parameter) in parameters {
            guard let parts = changes[key] else { continue }
            let new = combined(base: parameter.scalars, parts)
            guard new.allSatisfy(\.isFinite) else {
                throw ModelError(
                    file: paths, key: key,
                    "applying at scale(s) \(parts.map(\.scale)) gives non-finite weights")
            }
            edits.append((key, parameter, new))
        }
        return UNetWeightEdits(applying: edits)
    }

    /// The file's values that differ from the UNet's, by key; every key must name a UNet
    /// parameter of the same shape and hold finite values.
    static func changedValues(_ path: String, _ byKey: [String: Tensor]) throws
        -> [(String, [Float])]
    {
        let file = try SafeTensorsReader(path: path)
        var changed: [(String, [Float])] = []
        for info in file.tensors {
            guard let parameter = byKey[info.name] else {
                throw ModelError(
                    file: path, key: info.name,
                    "is not a parameter of this UNet (a UNet weights file holds diffusers UNet2DConditionModel keys)"
                )
            }
            guard info.shape == parameter.shape else {
                throw ModelError(
                    file: path, key: info.name,
                    "expected shape \(parameter.shape), found \(info.shape)")
            }
            let values = try file.floats(info.name)
            guard values.allSatisfy(\.isFinite) else {
                throw ModelError(file: path, key: info.name, "holds NaN or infinite values")
            }
            if values != parameter.scalars { changed.append((info.name, values)) }
        }
        return changed
    }

    /// W_base + Σ s (W − W_base) in double precision; one file at scale 1 gives its values
    /// exactly, as loading the state_dict would.
    static func combined(base: [Float], _ parts: [(scale: Float, values: [Float])]) -> [Float] {
        if parts.count == 1, parts[0].scale == 1 { return parts[0].values }
        var sum = base.map(Double.init)
        for (scale, values) in parts {
            for i in sum.indices {
                sum[i] += Double(scale) * (Double(values[i]) - Double(base[i]))
            }
        }
        return sum.map(Float.init)
    }
}
