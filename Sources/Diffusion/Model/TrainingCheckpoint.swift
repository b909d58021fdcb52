import Formats
import Tensor

/// A training run's state in one safetensors file: the trained parameters, AdamW's
/// moments and step, and string metadata (the run's settings). Written atomically, so an
/// interrupted save leaves the previous checkpoint intact; resuming from it continues the
/// run bit for bit.
public enum TrainingCheckpoint {
    /// Saves `parameters` (named, in the optimizer's order) and `optimizer`'s state, and
    /// `state`: other tensors the run carries from step to step (an attack's prefix).
    public static func save(
        to path: String, parameters: [(String, Tensor)], optimizer: AdamW, step: Int,
        metadata: [String: String] = [:], state: [(String, Tensor)] = []
    ) throws {
        precondition(
            parameters.count == optimizer.parameters.count, "one name per optimized parameter")
        var writer = SafeTensorsWriter(metadata: metadata.merging(["step": String(step)]) { $1 })
        for (i, (name, parameter)) in parameters.enumerated() {
            try writer.add("param." + name, shape: parameter.shape, values: parameter.scalars)
            try writer.add(
                "adam.m." + name, shape: parameter.shape, values: optimizer.firstMoments[i].scalars)
            try writer.add(
                "adam.v." + name, shape: parameter.shape, values: optimizer.secondMoments[i].scalars
            )
        }
        for (name, tensor) in state {
            try writer.add("state." + name, shape: tensor.shape, values: tensor.scalars)
        }
        try writer.write(to: path)
    }

    /// The tensor `save` wrote as `state` `name`, of `shape`; nil where the file has none.
    public static func state(_ name: String, shape: [Int], from path: String) throws -> Tensor? {
        let file = try SafeTensorsReader(path: path)
        guard file.contains("state." + name) else { return nil }
        let entry = CheckpointEntry(Tensor.zeros(shape))
        try WeightLoading.load(entry, from: file, prefix: "state." + name)
        return entry.tensor
    }

    /// Restores `parameters` and `optimizer` from `path`; returns the step and metadata.
    /// With `settings`, a checkpoint saved with others is refused before any tensor is
    /// read, naming the first setting that differs (another rank or method would
    /// otherwise show as a tensor of another shape, or a missing one).
    public static func load(
        from path: String, parameters: [(String, Tensor)], optimizer: AdamW,
        settings: [String: String]? = nil
    ) throws -> (step: Int, metadata: [String: String]) {
        let file = try SafeTensorsReader(path: path)
        guard let stepText = file.metadata["step"], let step = Int(stepText) else {
            throw ModelError(
                file: path, key: "__metadata__.step",
                "missing (expected the step of a duo training checkpoint)")
        }
        if let settings,
            let mismatch = settingsMismatch(
                saved: file.metadata.filter { $0.key != "step" }, current: settings)
        {
            throw ModelError(
                file: path,
                "\(mismatch); resume with the same settings, or start over without --resume")
        }
        var firsts: [Tensor] = []
        var seconds: [Tensor] = []
        for (name, parameter) in parameters {
            let layer = CheckpointEntry(parameter)
            try WeightLoading.load(layer, from: file, prefix: "param." + name)
            let m = CheckpointEntry(Tensor.zeros(parameter.shape))
            let v = CheckpointEntry(Tensor.zeros(parameter.shape))
            try WeightLoading.load(m, from: file, prefix: "adam.m." + name)
            try WeightLoading.load(v, from: file, prefix: "adam.v." + name)
            firsts.append(m.tensor)
            seconds.append(v.tensor)
        }
        optimizer.restore(step: step, firstMoments: firsts, secondMoments: seconds)
        return (step, file.metadata.filter { $0.key != "step" })
    }

    /// Why a checkpoint saved with the settings `saved` cannot continue a run with `current`:
    /// the first key, in order, whose value differs or that only one of them holds (a setting
    /// recorded only when set, like a precision or a prefix file); nil when they agree.
    public static func settingsMismatch(saved: [String: String], current: [String: String])
        -> String?
    {
        for key in Set(saved.keys).union(current.keys).sorted() where saved[key] != current[key] {
            return "was made with \(key) \(saved[key] ?? "unset"), not \(current[key] ?? "unset")"
        }
        return nil
    }
}

/// One tensor as a layer with the empty key, so that WeightLoading's checks serve it.
private final class CheckpointEntry: Layer {
    let tensor: Tensor
    init(_ tensor: Tensor) { self.tensor = tensor }
    var namedParameters: [(String, Tensor)] { [("", tensor)] }

}
