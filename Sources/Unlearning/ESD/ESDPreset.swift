import Diffusion
import Formats

/// ESD settings a run changes from the reference preset: a model folder's named preset
/// (`duo_defaults.json`'s "esd" table) or the command line's options. nil leaves the
/// setting as it was.
public struct ESDOptions: Hashable, Sendable {
    public var trainMethod: ESDTrainMethod?
    /// true: a LoRA; false: full rank (`--esd-weights lora|full`).
    public var lora: Bool?
    public var rank: Int?
    public var alpha: Float?
    public var targets: Set<LoRATarget>?
    public var learningRate: Float?
    public var iterations: Int?
    public var startGuidance: Float?
    public var negativeGuidance: Float?
    public var ddimSteps: Int?

    public init() {}
}

/// A named ESD preset of a model folder: the settings where it leaves the reference, with
/// a line on why. The embedded model's is "world" (its duo_defaults.json).
public struct ESDPreset: Hashable, Sendable {
    public var name: String
    public var about: String
    public var options: ESDOptions

    /// The name of the preset every model has: the reference's published settings.
    public static let reference = "reference"

    public init(name: String, about: String = "", options: ESDOptions) {
        self.name = name
        self.about = about
        self.options = options
    }
}

extension ESDSettings {
    /// A run's settings: the reference preset, then the chosen preset's changes (`preset`:
    /// nil picks the model folder's own, else the reference), then the command line's
    /// options. `prompt` is the command line's phrase or the concept file's.
    public static func merged(
        modelPreset: ESDPreset?, preset: String?, prompt: String, options o: ESDOptions,
        seed: UInt64, checkpointEvery: Int
    ) throws -> ESDSettings {
        var s = ESDSettings(prompt: prompt)
        let chosen = preset ?? modelPreset?.name ?? ESDPreset.reference
        var p = ESDOptions()
        if chosen != ESDPreset.reference {
            guard let modelPreset, modelPreset.name == chosen else {
                let known = [ESDPreset.reference] + (modelPreset.map { [$0.name] } ?? [])
                throw UnlearningError(
                    "--esd-preset \(chosen): this model has no such preset (known: \(known.joined(separator: ", ")))"
                )
            }
            p = modelPreset.options
            s.preset = chosen
        }
        s.trainMethod = o.trainMethod ?? p.trainMethod ?? s.trainMethod
        s.learningRate = o.learningRate ?? p.learningRate ?? s.learningRate
        s.iterations = o.iterations ?? p.iterations ?? s.iterations
        s.startGuidance = o.startGuidance ?? p.startGuidance ?? s.startGuidance
        s.negativeGuidance = o.negativeGuidance ?? p.negativeGuidance ?? s.negativeGuidance
        s.ddimSteps = o.ddimSteps ?? p.ddimSteps ?? s.ddimSteps
        s.seed = seed
        s.checkpointEvery = checkpointEvery
        s.weights = try weights(preset: p, options: o, method: s.trainMethod)
        return s
    }

    /// Full rank unless the preset or options ask for a LoRA: rank 32 and alpha = rank
    /// (DUO's), on the LoRA targets nearest the train method's layers unless given.
    static func weights(preset p: ESDOptions, options o: ESDOptions, method: ESDTrainMethod)
        throws -> Weights
    {
        guard o.lora ?? p.lora ?? false else {
            if o.rank != nil || o.alpha != nil || o.targets != nil {
                throw UnlearningError(
                    "--rank, --alpha and --targets shape a LoRA: with --method esd they need --esd-weights lora"
                )
            }
            return .fullRank
        }
        let rank = o.rank ?? p.rank ?? 32
        let alpha = o.alpha ?? (o.rank != nil ? nil : p.alpha) ?? Float(rank)
        let targets = o.targets ?? p.targets ?? method.loraTargets
        guard !targets.contains(.textEncoder) else {
            throw UnlearningError(
                "targets: ESD trains the UNet; the text-encoder target is for --method duo or dspo"
            )
        }
        return .lora(rank: rank, alpha: alpha, targets: targets)
    }
}

extension ESDPreset {
    /// The "esd" table of a model folder's duo_defaults.json at `path`: `preset` (its name,
    /// required, not "reference"), `about`, and any of `train_method`, `weights` ("full" or
    /// "lora"), `rank`, `alpha`, `targets`, `lr`, `iterations`, `start_guidance`,
    /// `negative_guidance`, `ddim_steps`. Unknown keys and bad values name the file and key.
    init(table: JSONValue, path: String) throws {
        try ModelDefaults.rejectUnknown(
            table, path: path,
            known: [
                "preset", "about", "train_method", "weights", "rank", "alpha", "targets", "lr",
                "iterations", "start_guidance", "negative_guidance", "ddim_steps",
            ], table: "esd")
        guard let name = table["preset"]?.string, !name.isEmpty, name != Self.reference else {
            throw ModelError(
                file: path, key: "esd.preset", "expected the preset's name (not \"reference\")")
        }
        var o = ESDOptions()
        if let method = table["train_method"] {
            guard let value = method.string.flatMap(ESDTrainMethod.init(rawValue:)) else {
                throw ModelError(file: path, key: "esd.train_method", "expected noxattn or xattn")
            }
            o.trainMethod = value
        }
        if let weights = table["weights"] {
            guard let value = weights.string, ["full", "lora"].contains(value) else {
                throw ModelError(file: path, key: "esd.weights", "expected full or lora")
            }
            o.lora = value == "lora"
        }
        func number<T: BinaryFloatingPoint>(_ key: String, _ range: ClosedRange<Double>) throws
            -> T?
        {
            try ModelDefaults.number(table, key, path: path, in: range, prefix: "esd")
        }
        func integer(_ key: String, _ range: ClosedRange<Double>) throws -> Int? {
            let value: Double? = try number(key, range)
            guard let value else { return nil }
            guard value == value.rounded() else {
                throw ModelError(file: path, key: "esd.\(key)", "expected an integer")
            }
            return Int(value)
        }
        o.rank = try integer("rank", 1...4096)
        o.alpha = try number("alpha", 1e-6...1e6)
        o.targets = try ModelDefaults.targets(table, path: path, prefix: "esd")
        o.learningRate = try number("lr", 1e-12...10)
        o.iterations = try integer("iterations", 1...1e9)
        o.startGuidance = try number("start_guidance", 0...100)
        o.negativeGuidance = try number("negative_guidance", -100...100)
        o.ddimSteps = try integer("ddim_steps", 2...1000)
        self.init(name: name, about: table["about"]?.string ?? "", options: o)
    }
}
