import Concepts
import Diffusion
import Formats
import Foundation
import Tensor

/// Everything that decides the content of a pairs folder (`synthesis.json`): a folder made
/// with other settings or another model is refused rather than mixed.
public struct PairSettings: Hashable, Sendable {
    public var concept: String
    /// SHA-256 of the concept's prompt templates (unsafe, safe), which decide the prompts.
    public var promptsDigest: String
    /// The model folder as given (for people) and the digest of its files (what counts).
    public var model: String
    public var weightsDigest: String
    public var strength: Double
    public var steps: Int
    /// The edit's guidance, and the unsafe draw's unless `unsafeGuidance` is set.
    public var guidance: Float
    public var unsafeGuidance: Float?
    /// "bf16" when the pairs are drawn in bf16 mixed precision (`BLAS.mixedPrecision`), nil
    /// for float32 (recorded only when set).
    public var precision: String?
    /// The edit's sampler ("ddim", "ddpm"), or "model": the folder's own.
    public var editScheduler: String
    public var seed: UInt64
    public var count: Int
    /// Keep a pair only when its unsafe image shows the concept and its safe one does not.
    public var filter: Bool
    public var detector: String
    public var threshold: Double
    /// Draws per side and pair before the run gives up on a pair.
    public var maxDraws: Int
    /// Pairs made together; part of the identity because it groups the floating-point work.
    public var batchSize: Int

    public init(
        concept: ConceptFile, model: String, weightsDigest: String, detector: String,
        threshold: Double
    ) {
        self.concept = concept.name
        promptsDigest = PairSettings.digest(concept.unsafePrompts + ["\u{0}"] + concept.safePrompts)
        self.model = model
        self.weightsDigest = weightsDigest
        strength = concept.synthesis.strength
        steps = concept.synthesis.steps
        guidance = concept.synthesis.guidance
        unsafeGuidance = concept.synthesis.unsafeGuidance
        editScheduler = concept.synthesis.editScheduler ?? "model"
        seed = 0
        count = concept.synthesis.pairs
        filter = true
        self.detector = detector
        self.threshold = threshold
        maxDraws = 20
        batchSize = 16
    }

    /// The unsafe draw's guidance.
    var drawGuidance: Float { unsafeGuidance ?? guidance }

    /// The edit's scheduler kind; nil: the model folder's own.
    var editSchedulerKind: SchedulerKind? {
        SchedulerKind(shortName: editScheduler)
    }

    static func digest(_ lines: [String]) -> String {
        // FNV-1a over the text is enough to notice an edited template; no security involved.
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in lines.joined(separator: "\n").utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return String(hash, radix: 16)
    }

    /// The fields in file order.
    var fields: JSONFields {
        var fields: JSONFields = [
            ("concept", .string(concept)), ("prompts_digest", .string(promptsDigest)),
            ("model", .string(model)), ("weights_sha256", .string(weightsDigest)),
            ("strength", .number(shortest: strength)), ("steps", .number(steps)),
            ("guidance", .number(shortest: guidance)), ("edit_scheduler", .string(editScheduler)),
            ("seed", .number(String(seed))), ("count", .number(count)), ("filter", .bool(filter)),
            ("detector", .string(detector)), ("threshold", .number(shortest: threshold)),
            ("max_draws", .number(maxDraws)), ("batch_size", .number(batchSize)),
        ]
        // Written only when set: folders made before it existed still continue.
        if let unsafeGuidance {
            fields.insert(("unsafe_guidance", .number(shortest: unsafeGuidance)), at: 7)
        }
        if let precision { fields.append(("precision", .string(precision))) }
        return fields
    }

    public var json: String { JSONValue.object(fields).text() }

    /// Why a folder made with `recorded` cannot be continued with these settings, nil when
    /// it can. The model's path may differ (a moved folder); its digest may not.
    func difference(from recorded: [(String, String)]) -> String? {
        let old = Dictionary(recorded, uniquingKeysWith: { a, _ in a })
        for (key, value) in fields.map({ ($0.key, $0.value.line) })
        where key != "model" && old[key] != value {
            let was = old[key] ?? "nothing"
            if key == "weights_sha256" {
                return
                    "was made with another model (weights \(was.prefix(13))\", now \(value.prefix(13))\")"
            }
            return "was made with \(key) \(was), not \(value)"
        }
        let current = Set(fields.map(\.key))
        if let (key, value) = recorded.first(where: { !current.contains($0.0) }) {
            return "was made with \(key) \(value), not without it"
        }
        return nil
    }

    /// The recorded fields of a `synthesis.json`, as JSON text per key.
    static func recordedFields(_ path: String) throws -> [(String, String)] {
        let bytes = try Array(Data(contentsOf: URL(fileURLWithPath: path)))
        guard let members = try? JSONParser.parse(bytes).members else {
            throw UnlearningError("\(path): not a JSON object (delete the folder or use --force)")
        }
        return members.map { ($0.key, $0.value.line) }
    }
}

/// A synthesis or training run that cannot go on (settings mismatch, a pair the filter
/// never accepts, an unreadable pairs folder), in one line.
public typealias UnlearningError = OneLineError
