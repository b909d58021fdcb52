import Formats
import Tensor

/// Loads a layer's parameters from a safetensors file, checking every key and shape.
public enum WeightLoading {
    /// Copies each parameter of `layer` from `file`, under `prefix` + the layer's key.
    /// `alternatives` maps a key to other spellings to try in order (older checkpoints).
    /// Missing or misshapen tensors fail naming the file, the key, expected vs found; so do
    /// NaN or infinite values, which would only show later as NaN outputs.
    public static func load(
        _ layer: Layer, from file: SafeTensorsReader, prefix: String = "",
        alternatives: (String) -> [String] = { _ in [] }
    ) throws {
        for (key, parameter) in layer.namedParameters {
            let wanted = prefix + key
            guard let found = ([wanted] + alternatives(wanted)).first(where: file.contains) else {
                throw ModelError(
                    file: file.path, key: wanted,
                    "missing (expected a tensor of shape \(parameter.shape))")
            }
            let info = try file.info(found)
            guard info.shape == parameter.shape else {
                throw ModelError(
                    file: file.path, key: found,
                    "expected shape \(parameter.shape), found \(info.shape)")
            }
            let finite = try parameter.withUnsafeMutableBufferPointer { values in
                try file.read(found, into: values)
                return values.allSatisfy(\.isFinite)
            }
            guard finite else {
                throw ModelError(file: file.path, key: found, "holds NaN or infinite values")
            }
        }
    }

    /// Writes `layer`'s parameters to `path` (atomically), keys prefixed by `prefix`.
    public static func save(
        _ layer: Layer, to path: String, prefix: String = "", metadata: [String: String] = [:],
        as storage: SafeTensorsWriter.Storage = .f32
    ) throws {
        var writer = SafeTensorsWriter(metadata: metadata)
        for (key, parameter) in layer.namedParameters {
            try writer.add(
                prefix + key, shape: parameter.shape, values: parameter.scalars, as: storage)
        }
        try writer.write(to: path)
    }
}
