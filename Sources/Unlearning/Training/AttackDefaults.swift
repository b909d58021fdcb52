import Diffusion
import Formats

/// Which token ids a discrete prompt search may use (Ring-A-Bell's genetic algorithm).
public enum AttackTokenSpace: String, CaseIterable, Sendable {
    /// Every id of the vocabulary but 0 and the special tokens, as Ring-A-Bell's notebook
    /// draws them (`randint(1, 49406)` on SD 1.4's tokenizer); the found ids are written
    /// as their decoded text, which may tokenize back to other ids.
    case all
    /// Whole-word tokens that tokenize back to themselves, the concept's own words and
    /// synonyms left out: readable prompts that say exactly what was searched.
    case words
}

/// What textual inversion prompts its images with: diffusers' `learnable_property`
/// templates (Pham et al.'s fork adds `person`), or each image's own prompt.
public enum TextualInversionCaptions: String, CaseIterable, Sendable {
    /// diffusers' `imagenet_templates_small` ("a photo of a {}"), its default.
    case object
    /// diffusers' `imagenet_style_templates_small` ("a painting in the style of {}").
    case style
    /// Pham et al.'s `person_templates_small` ("a photo portrait of {}").
    case person
    /// Each image's unsafe prompt from its pair, the token in place of the concept's words
    /// (or in front, as Pham et al.'s I2P captions put it).
    case prompts
}

/// A model folder's `concept-inversion` preset: textual inversion's settings by the names
/// of diffusers' `textual_inversion.py` arguments; nil where the reference's stand.
public struct ConceptInversionDefaults: Equatable, Sendable {
    public var maxTrainSteps: Int?
    public var learningRate: Float?
    public var scaleLR: Bool?
    public var trainBatchSize: Int?
    public var gradientAccumulationSteps: Int?
    public var adamWeightDecay: Float?
    /// 0: every unsafe image of the pairs.
    public var numTrainImages: Int?
    public var flipP: Float?
    /// A word, or `vocabulary-mean`.
    public var initializerToken: String?
    public var captions: TextualInversionCaptions?

    public init() {}

    static let keys: Set<String> = [
        "max_train_steps", "learning_rate", "scale_lr", "train_batch_size",
        "gradient_accumulation_steps", "adam_weight_decay", "num_train_images", "flip_p",
        "initializer_token", "captions",
    ]
}

extension ModelDefaults {
    /// The `ring-a-bell` table: `generations`, `token_space`.
    mutating func readRingABell(_ table: JSONValue, path: String) throws {
        try Self.rejectUnknown(
            table, path: path, known: ["generations", "token_space"], table: "ring-a-bell")
        let generations: Double? = try Self.number(table, "generations", path: path, in: 1...1e6)
        ringABellGenerations = generations.map { Int($0) }
        ringABellTokenSpace = try Self.choice(table, "token_space", path: path)
    }

    /// The `concept-inversion` table (`ConceptInversionDefaults`).
    mutating func readConceptInversion(_ table: JSONValue, path: String) throws {
        try Self.rejectUnknown(
            table, path: path, known: ConceptInversionDefaults.keys, table: "concept-inversion")
        var preset = ConceptInversionDefaults()
        let count = { (key: String, range: ClosedRange<Double>) throws -> Int? in
            let value: Double? = try Self.number(table, key, path: path, in: range)
            return value.map { Int($0) }
        }
        preset.maxTrainSteps = try count("max_train_steps", 1...1e7)
        preset.trainBatchSize = try count("train_batch_size", 1...4096)
        preset.gradientAccumulationSteps = try count("gradient_accumulation_steps", 1...4096)
        preset.numTrainImages = try count("num_train_images", 0...1e6)
        preset.learningRate = try Self.number(table, "learning_rate", path: path, in: 1e-12...10)
        preset.adamWeightDecay = try Self.number(table, "adam_weight_decay", path: path, in: 0...10)
        preset.flipP = try Self.number(table, "flip_p", path: path, in: 0...1)
        if let field = table["scale_lr"] {
            guard let flag = field.bool else {
                throw ModelError(file: path, key: "scale_lr", "expected true or false")
            }
            preset.scaleLR = flag
        }
        if let field = table["initializer_token"] {
            guard let word = field.string, !word.isEmpty else {
                throw ModelError(
                    file: path, key: "initializer_token",
                    "expected a word, or \"vocabulary-mean\"")
            }
            preset.initializerToken = word
        }
        preset.captions = try Self.choice(table, "captions", path: path)
        conceptInversion = preset
    }

    /// A string naming one case of `T`, or nil when `key` is absent.
    static func choice<T: RawRepresentable & CaseIterable>(
        _ table: JSONValue, _ key: String, path: String
    ) throws -> T? where T.RawValue == String {
        guard let field = table[key] else { return nil }
        guard let name = field.string, let value = T(rawValue: name) else {
            let known = T.allCases.map(\.rawValue).joined(separator: ", ")
            throw ModelError(file: path, key: key, "expected one of \(known)")
        }
        return value
    }
}
