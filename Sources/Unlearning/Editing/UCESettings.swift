import Concepts
import Formats

/// Every setting of UCE's erasure (Unified Concept Editing, Gandikota et al., WACV 2024).
/// Defaults are the authors' erase script's: rohitgandikota/unified-concept-editing at
/// 35e91e2, train-scripts/train_erase.py (docs/reference-settings.md, "UCE").
public struct UCESettings: Hashable, Sendable {
    /// How an erased concept's target values are made (`--technique`, line 324).
    public enum Technique: String, CaseIterable, Sendable {
        /// v* = W c_guide: the guide's projection (the script's default).
        case replace
        /// The guide's projection less its component along the erased concept's own
        /// projection (lines 267-276).
        case tensor
    }

    /// The concepts to erase (`--concepts`), one prompt each.
    public var erase: [String]
    /// The concept each erased one is mapped to, one per erased concept; "" is the empty
    /// prompt, the script's default (`new_texts = [' ' ...]`, line 391).
    public var guide: [String]
    /// Concepts whose projections are kept (`--preserve_concepts`, default none); the empty
    /// prompt is always kept besides them (line 422).
    public var preserve: [String]
    /// λ, the weight on the original weights (`lamb=0.5` at line 442).
    public var lambda: Double = 0.5
    /// Weight of the erase terms (`--erase_scale`, default 1).
    public var eraseScale: Double = 1
    /// Weight of the preserve terms; nil: max(0.1, 1 / (1 + preserve.count)), the script's
    /// default (line 428).
    public var preserveScale: Double?
    public var technique = Technique.replace

    /// Erases `erase`, each towards the empty prompt, keeping the empty prompt alone.
    public init(erase: [String], guide: [String]? = nil, preserve: [String] = []) {
        self.erase = erase
        self.guide = guide ?? Array(repeating: "", count: erase.count)
        self.preserve = preserve
    }

    public var resolvedPreserveScale: Double {
        preserveScale ?? max(0.1, 1 / Double(1 + preserve.count))
    }

    /// Why these settings cannot run, nil when they can.
    public var problem: String? {
        if erase.isEmpty { return "no concept to erase" }
        if guide.count != erase.count {
            return
                "\(guide.count) guide concept(s) for \(erase.count) erased (give one, or one per erased concept)"
        }
        if !(lambda >= 0 && lambda.isFinite) { return "lambda must be a finite number >= 0" }
        if !(eraseScale >= 0 && eraseScale.isFinite) {
            return "erase scale must be a finite number >= 0"
        }
        if let preserveScale, !(preserveScale >= 0 && preserveScale.isFinite) {
            return "preserve scale must be a finite number >= 0"
        }
        return nil
    }

    /// The settings in a fixed order, for config.json and the weights file's metadata.
    public var fields: JSONFields {
        [
            ("method", .string("uce")),
            ("erase", .array(erase.map(JSONValue.string))),
            ("guide", .array(guide.map(JSONValue.string))),
            ("preserve", .array(preserve.map(JSONValue.string))),
            ("lambda", .number(shortest: lambda)),
            ("erase_scale", .number(shortest: eraseScale)),
            ("preserve_scale", .number(shortest: resolvedPreserveScale)),
            ("technique", .string(technique.rawValue)),
            ("edited", .string("attn2.to_k, attn2.to_v")),
            ("precision", .string("float64 solve")),
        ]
    }
}

extension UCESettings {
    /// What the command line sets, nil (or empty) where it sets nothing.
    public struct Overrides: Hashable, Sendable {
        public var erase: [String] = []
        public var guide: [String] = []
        /// nil: not set; [] keeps the empty prompt alone (UCE's default).
        public var preserve: [String]?
        public var lambda: Double?
        public var eraseScale: Double?
        public var preserveScale: Double?
        public var technique: Technique?

        public init() {}
    }

    /// A run's settings: the options, else the concept file's `[uce]` table, else the erase
    /// script's defaults with the concept's explicit words as the concepts to erase. One
    /// guide stands for every erased concept, as the script repeats a single
    /// `--guided_concepts` (lines 395-396).
    public static func merged(concept: ConceptFile, options o: Overrides) throws -> UCESettings {
        let table = concept.uce
        let erase = o.erase.isEmpty ? table.erase ?? concept.explicitWords : o.erase
        var guide = o.guide.isEmpty ? table.guide ?? [""] : o.guide
        if guide.count == 1 { guide = Array(repeating: guide[0], count: erase.count) }
        if !o.guide.isEmpty, guide.count != erase.count {
            throw UCEError(
                "--uce-guide given \(o.guide.count) times for \(erase.count) erased concept(s) (give it once, or once per erased concept)"
            )
        }
        var s = UCESettings(
            erase: erase, guide: guide,
            preserve: o.preserve ?? table.preserve ?? [])
        s.lambda = o.lambda ?? table.lambda ?? s.lambda
        s.eraseScale = o.eraseScale ?? table.eraseScale ?? s.eraseScale
        s.preserveScale = o.preserveScale ?? table.preserveScale
        if let name = table.technique { s.technique = Technique(rawValue: name) ?? s.technique }
        s.technique = o.technique ?? s.technique
        if let problem = s.problem { throw UCEError(problem) }
        return s
    }
}
