import Diffusion
import Foundation
import Formats

/// A model folder's own defaults for duo, where they differ from the published methods'
/// (`duo_defaults.json` beside `model_index.json`): data, read the same way for every
/// model, whether `--model` names the folder or it is the embedded default. A folder
/// without the file gets the methods' reference settings. Concept files and options win
/// over it. Unknown keys are an error naming the file, as in every format duo reads.
public struct ModelDefaults: Sendable {
    public static let fileName = StableDiffusion.defaultsFileName

    public var beta: Float?
    public var baseLearningRate: Float?
    public var baseLambda: Float?
    public var targets: Set<LoRATarget>?
    public var promptedShare: Float?
    /// Ring-A-Bell's genetic-search generations.
    public var ringABellGenerations: Int?
    /// The token ids Ring-A-Bell's search may use.
    public var ringABellTokenSpace: AttackTokenSpace?
    /// Concept inversion's settings where they differ from the reference's.
    public var conceptInversion = ConceptInversionDefaults()
    /// The model's own ESD preset ("esd"), a run's default unless it names "reference".
    public var esdPreset: ESDPreset?
    /// UnlearnDiffAtk's timesteps visited and attack iterations at each.
    public var unlearnDiffTimesteps: Int?
    public var unlearnDiffIterations: Int?

    public init() {}

    /// The defaults of the model folder `directory` (none when it holds no such file).
    public init(directory: String) throws {
        let path = directory + "/" + Self.fileName
        guard FileManager.default.fileExists(atPath: path) else { return }
        let value: JSONValue
        do {
            value = try JSONParser.parse(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
        } catch {
            throw ModelError(file: path, "not a JSON object (\(error))")
        }
        try Self.rejectUnknown(
            value, path: path,
            known: [
                "about", "unlearning", "ring-a-bell", "concept-inversion", "esd", "unlearndiff",
            ],
            table: nil)
        if let unlearning = value["unlearning"] {
            try Self.rejectUnknown(
                unlearning, path: path,
                known: ["beta", "base_lr", "base_lambda", "targets", "prompted_share"],
                table: "unlearning")
            beta = try Self.number(unlearning, "beta", path: path, in: 1e-6...1e9)
            baseLearningRate = try Self.number(unlearning, "base_lr", path: path, in: 1e-12...10)
            baseLambda = try Self.number(unlearning, "base_lambda", path: path, in: 0...1e15)
            promptedShare = try Self.number(unlearning, "prompted_share", path: path, in: 0...1)
            targets = try Self.targets(unlearning, path: path)
        }
        if let ringABell = value["ring-a-bell"] { try readRingABell(ringABell, path: path) }
        if let inversion = value["concept-inversion"] {
            try readConceptInversion(inversion, path: path)
        }
        if let esd = value["esd"] { esdPreset = try ESDPreset(table: esd, path: path) }
        if let unlearnDiff = value["unlearndiff"] {
            try Self.rejectUnknown(
                unlearnDiff, path: path, known: ["timesteps", "iterations"], table: "unlearndiff")
            unlearnDiffTimesteps = try Self.count(unlearnDiff, "timesteps", path: path)
            unlearnDiffIterations = try Self.count(unlearnDiff, "iterations", path: path)
        }
    }

    /// DUO's reference settings with this model's defaults applied.
    public func unlearningSettings() -> UnlearningSettings {
        var settings = UnlearningSettings()
        settings.beta = beta ?? settings.beta
        settings.baseLearningRate = baseLearningRate ?? settings.baseLearningRate
        settings.baseLambda = baseLambda ?? settings.baseLambda
        settings.targets = targets ?? settings.targets
        settings.promptedShare = promptedShare ?? settings.promptedShare
        return settings
    }

    static func rejectUnknown(
        _ value: JSONValue, path: String, known: Set<String>, table: String?
    ) throws {
        guard let members = value.members else {
            throw ModelError(file: path, key: table, "expected a JSON object")
        }
        if let unknown = members.map(\.key).first(where: { !known.contains($0) }) {
            throw ModelError(
                file: path, key: table.map { "\($0).\(unknown)" } ?? unknown, "unknown key")
        }
    }

    /// `table[key]` as a number in `range`; errors name the key under `prefix` ("esd.lr").
    static func number<T: BinaryFloatingPoint>(
        _ table: JSONValue, _ key: String, path: String, in range: ClosedRange<Double>,
        prefix: String? = nil
    ) throws -> T? {
        guard let field = table[key] else { return nil }
        guard let number = field.double, range.contains(number) else {
            throw ModelError(
                file: path, key: prefix.map { "\($0).\(key)" } ?? key,
                "expected a number from \(range.lowerBound) to \(range.upperBound)")
        }
        return T(number)
    }

    /// A whole number from 1 to a million.
    private static func count(_ table: JSONValue, _ key: String, path: String) throws -> Int? {
        let number: Double? = try Self.number(table, key, path: path, in: 1...1e6)
        guard let number else { return nil }
        guard number.rounded() == number else {
            throw ModelError(file: path, key: key, "expected a whole number, got \(number)")
        }
        return Int(number)
    }

    static func targets(_ table: JSONValue, path: String, prefix: String? = nil) throws
        -> Set<LoRATarget>?
    {
        let key = prefix.map { "\($0).targets" } ?? "targets"
        guard let field = table["targets"] else { return nil }
        guard let names = field.array?.map(\.string), !names.isEmpty else {
            throw ModelError(file: path, key: key, "expected a non-empty array of target names")
        }
        return Set(
            try names.map { name in
                guard let name, let target = LoRATarget(rawValue: name) else {
                    throw ModelError(
                        file: path, key: key, "unknown target (known: \(LoRATarget.names))")
                }
                return target
            })
    }
}
