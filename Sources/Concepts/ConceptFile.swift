import Diffusion
import Formats
import Foundation

/// A concept file, `concepts/<name>.toml`: what a concept is, the words that bring it,
/// and the prompt templates `duo synthesize` turns into (unsafe, safe) prompt pairs.
///
/// The format (a TOML subset, see `TOMLDocument`) is documented field by field in
/// docs/concept-files.md. Templates may hold placeholders (`{colour}`) that a `PromptFiller`
/// fills; a template without any is a plain prompt. Keys: `name`, `description`, `kind` ("attribute" or "object");
/// `[words]` `explicit`, `synonyms`, `implicit`; `[prompts]` `unsafe`, `safe` (one per
/// unsafe prompt, or one shared) and optional `keep`; optional `[synthesis]` (SDEdit
/// settings), `[unlearning]` (the concept's own `duo unlearn` defaults), `[esd]` (the
/// phrase ESD erases), `[detector]`
/// (which detector judges the concept) and `[attacks]` (prompt set files beside the
/// concept file).
public struct ConceptFile: Hashable, Sendable {
    public var path: String
    public var name: String
    public var description: String
    public var kind: String
    public var explicitWords: [String]
    public var synonyms: [String]
    public var implicitTriggers: [String]
    /// Templates bringing the concept; `safePrompts[i]` is `unsafePrompts[i]` without it
    /// (the file may give one safe prompt for all: it is repeated here).
    public var unsafePrompts: [String]
    public var safePrompts: [String]
    public var keepPrompts: [String]
    /// `[prompts] size`: for a filler that draws scenes, the size of the scenes the unsafe
    /// and safe templates are filled from (the world: "large" scenes hold one object); nil:
    /// any. The filler checks the value.
    public var pairSceneSize: String?
    public var synthesis: SynthesisSettings
    public var unlearning: UnlearningDefaults
    /// `[uce]`: what `duo unlearn --method uce` erases, towards what, and what it keeps.
    public var uce: UCEDefaults
    /// `[esd] prompt`: the one phrase ESD prompts with (ESD's `--prompt`, "nudity"); nil:
    /// the first explicit word (`esdConceptPrompt`).
    public var esdPrompt: String?
    public var detector: DetectorChoice
    /// Prompt sets for evaluation, in file order.
    public var attackSets: [AttackSetFile]
    /// The line each key was set on, for errors found after parsing (`problem`).
    public var keyLines: [String: Int] = [:]

    /// A prompt set file named in `[attacks]`: one prompt per line, `#` comments.
    public struct AttackSetFile: Hashable, Sendable {
        public var name: String
        /// Resolved against the concept file's folder.
        public var path: String
        /// The label of the model the set was made against (a white-box attack's set,
        /// `duo eval --attack-set NAME=PATH@LABEL`): sampled for that model alone. nil:
        /// every model (all sets of a concept file).
        public var against: String?

        public init(name: String, path: String, against: String? = nil) {
            self.name = name
            self.path = path
            self.against = against
        }
    }

    /// `duo synthesize`'s settings. The defaults are DUO's data script's
    /// (naver-ai/DUO, datasets/SD/generate_datasets.py): strength 0.75 (nudity; 0.8 for
    /// violence), guidance 7.5, 50 steps (diffusers' default), 64 pairs.
    public struct SynthesisSettings: Hashable, Sendable {
        public var strength = 0.75
        public var guidance: Float = 7.5
        /// Guidance of the unsafe draw where it differs from the edit's; nil: `guidance` for
        /// both, as DUO's script (one pipeline default for both).
        public var unsafeGuidance: Float?
        public var steps = 50
        public var pairs = 64
        /// The sampler of the edit ("ddim", "ddpm"); nil: the model folder's own. The
        /// unsafe draw always uses the folder's own sampler.
        public var editScheduler: String?

        public init() {}
    }

    /// `duo unlearn`'s settings for this concept, where they differ from the model's
    /// defaults: DUO's scripts, too, set β per concept (500 for nudity, 1000 for
    /// violence). nil: the model's default; an option on the command line wins over both.
    public struct UnlearningDefaults: Hashable, Sendable {
        public var beta: Float?
        public var lambda: Float?
        public var learningRate: Float?
        public var steps: Int?
        public var tMax: Int?
        public var rank: Int?
        public var targets: Set<LoRATarget>?
        public var promptedShare: Float?
        public var unconditionalLambda: Float?
        public var fragmentShare: Float?
        public var prefixShare: Float?
        /// "words" or "tokens" (`UnlearningSettings.PrefixVocabulary`).
        public var prefixVocabulary: String?
        public var adversarialShare: Float?
        public var attackSteps: Int?
        public var attackWarmupSteps: Int?

        public init() {}
    }

    /// `duo unlearn --method uce`'s settings for this concept (UCE, Gandikota et al. 2024);
    /// nil: the erase script's default (erase the concept's explicit words, each towards
    /// the empty prompt, keep the empty prompt alone); an option wins over both.
    public struct UCEDefaults: Hashable, Sendable {
        public var erase: [String]?
        /// One concept for all, or one per erased concept; "" is the empty prompt.
        public var guide: [String]?
        public var preserve: [String]?
        public var lambda: Double?
        public var eraseScale: Double?
        public var preserveScale: Double?
        /// "replace" or "tensor".
        public var technique: String?

        public init() {}
    }

    /// Which detector says whether an image shows the concept, and from what score.
    public struct DetectorChoice: Hashable, Sendable {
        public enum Kind: Hashable, Sendable {
            /// A detector built into the model's world, by name (the embedded world's
            /// detector heads: "stripes", "splatter").
            case builtin(String)
            /// A process speaking the detector line protocol (see `duo world detect`).
            case command(String)
            /// Neither `builtin` nor `command`: the world's built-in detector of the concept's
            /// own name where the file uses the world, else none (a real model's concept
            /// with no detector shipped, as violence: the run names one, `--detector`).
            case unspecified
        }
        public var kind: Kind
        /// Scores above it count as "shows the concept".
        public var threshold = 0.5
        /// Seconds an external detector may take to answer one image.
        public var timeout = 60.0
    }

    /// Why `name` cannot be used as one folder name, nil when it can: letters, digits,
    /// '-', '_' and '.', at most 100 characters, not starting with '.' or '-'.
    public static func unsafeNameReason(_ name: String) -> String? {
        let allowed = name.unicodeScalars.allSatisfy {
            $0.isASCII
                && (CharacterSet.alphanumerics.contains($0) || "-_.".unicodeScalars.contains($0))
        }
        guard !name.isEmpty, name.count <= 100, allowed, !name.hasPrefix("."), !name.hasPrefix("-")
        else {
            return "'\(name)' is not a safe folder name (letters, digits, '-', '_', '.'; "
                + "at most 100 characters; not starting with '.' or '-')"
        }
        return nil
    }

    /// Every key a concept file may hold; any other is an error (it is most likely a typo).
    /// Keys under `[attacks]` are set names and may be anything.
    static let knownKeys: Set<String> = [
        "name", "description", "kind", "words", "words.explicit", "words.synonyms",
        "words.implicit", "prompts", "prompts.unsafe", "prompts.safe", "prompts.keep",
        "prompts.size",
        "synthesis", "synthesis.strength", "synthesis.guidance", "synthesis.unsafe_guidance",
        "synthesis.steps",
        "synthesis.pairs", "synthesis.edit_scheduler", "unlearning", "unlearning.beta",
        "unlearning.lambda", "unlearning.lr", "unlearning.steps", "unlearning.t_max",
        "unlearning.rank", "unlearning.targets", "unlearning.prompted_share",
        "unlearning.lambda_unconditional", "unlearning.fragment_share",
        "unlearning.prefix_share", "unlearning.prefix_vocabulary", "unlearning.adversarial_share",
        "unlearning.attack_steps",
        "unlearning.attack_warmup_steps", "uce", "uce.erase",
        "uce.guide", "uce.preserve",
        "uce.lambda", "uce.erase_scale", "uce.preserve_scale", "uce.technique", "esd",
        "esd.prompt", "detector", "detector.builtin", "detector.command",
        "detector.threshold", "detector.timeout", "attacks",
    ]

    /// An error at `key` of this file, found after parsing (by a prompt filler, a
    /// detector lookup): one line naming the file, the key's line and the key.
    public func problem(_ reason: String, key: String) -> ConceptFileError {
        let table = key.split(separator: ".").dropLast().joined(separator: ".")
        let line = keyLines[key] ?? keyLines[table] ?? 1
        return ConceptFileError(path: path, line: line, key: key, reason: reason)
    }

    /// The phrase ESD erases: `[esd] prompt`, else the first explicit word.
    public var esdConceptPrompt: String { esdPrompt ?? explicitWords.first ?? name }

    /// Every template of the file with the key it came from, in file order.
    public var templates: [(key: String, template: String)] {
        unsafePrompts.map { ("prompts.unsafe", $0) }
            + Set(safePrompts).sorted().map {
                ("prompts.safe", $0)
            } + keepPrompts.map { ("prompts.keep", $0) }
    }

    /// Whether any template holds a placeholder (a plain-prompt filler cannot fill it).
    public var hasPlaceholders: Bool {
        templates.contains { !((try? PromptTemplate.placeholders(in: $0.template)) ?? []).isEmpty }
    }

    /// Reads and parses the file at `path`.
    public init(contentsOf path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConceptFileError(path: path, line: 0, key: nil, reason: "cannot read the file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConceptFileError(path: path, line: 0, key: nil, reason: "not UTF-8 text")
        }
        try self.init(parsing: text, path: path)
    }

    /// Parses `text`; `path` names the file in errors.
    public init(parsing text: String, path: String) throws {
        let document = try TOMLDocument(parsing: text, path: path)
        let fields = ConceptFields(document: document, path: path)
        try fields.rejectUnknownKeys()
        self.path = path
        keyLines = document.lines
        name = try fields.safeName("name")
        description = try fields.string("description")
        kind = try fields.string("kind", oneOf: ["attribute", "object"])
        explicitWords = try fields.words("words.explicit")
        synonyms = try fields.words("words.synonyms")
        implicitTriggers = try fields.words("words.implicit")
        unsafePrompts = try fields.templates("prompts.unsafe")
        safePrompts = try fields.templates("prompts.safe")
        keepPrompts = try fields.templates("prompts.keep", required: false)
        if document.values["prompts.size"] != nil {
            pairSceneSize = try fields.string("prompts.size")
        }
        if safePrompts.count == 1 {
            safePrompts = Array(repeating: safePrompts[0], count: unsafePrompts.count)
        }
        guard unsafePrompts.count == safePrompts.count else {
            throw fields.error(
                "has \(safePrompts.count) prompts but prompts.unsafe has \(unsafePrompts.count) "
                    + "(give one safe prompt per unsafe prompt, or one for all)",
                key: "prompts.safe")
        }
        synthesis = try fields.synthesis()
        unlearning = try fields.unlearning()
        uce = try fields.uce()
        if document.values["esd.prompt"] != nil {
            esdPrompt = try fields.string("esd.prompt")
            if esdPrompt!.trimmingCharacters(in: .whitespaces).isEmpty {
                throw fields.error("expected a phrase, found an empty string", key: "esd.prompt")
            }
        }
        detector = try fields.detector()
        let folder = PathText.parent(path)
        attackSets = try fields.attackSets().map { name, file in
            AttackSetFile(name: name, path: (folder as NSString).appendingPathComponent(file))
        }
    }
}

/// An error in a concept file: the file, the line and the key, in one line.
public typealias ConceptFileError = TOMLError

/// Typed access to a parsed concept file, with errors naming file, line and key.
private struct ConceptFields {
    let document: TOMLDocument
    let path: String

    func error(_ reason: String, key: String) -> ConceptFileError {
        // A missing key is reported at its table's header (or line 1 at the top level).
        let table = key.split(separator: ".").dropLast().joined(separator: ".")
        let line = document.lines[key] ?? document.lines[table] ?? 1
        return ConceptFileError(path: path, line: line, key: key, reason: reason)
    }

    func rejectUnknownKeys() throws {
        let unknown = document.lines.keys.filter {
            !ConceptFile.knownKeys.contains($0) && !$0.hasPrefix("attacks.")
        }
        if let key = unknown.min(by: { document.lines[$0]! < document.lines[$1]! }) {
            throw error("unknown key", key: key)
        }
    }

    func string(_ key: String, oneOf allowed: [String]? = nil) throws -> String {
        switch document.values[key] {
        case .string(let value):
            if let allowed, !allowed.contains(value) {
                throw error(
                    "expected one of \(allowed.joined(separator: ", ")), found '\(value)'", key: key
                )
            }
            return value
        case nil: throw error("missing", key: key)
        case let other?: throw error("expected a string, found \(other.typeName)", key: key)
        }
    }

    /// A number in `range`, `fallback` when the key is absent.
    func number(
        _ key: String, in range: ClosedRange<Double>, fallback: Double, integer: Bool = false
    ) throws -> Double {
        switch document.values[key] {
        case nil:
            return fallback
        case .number(let value, let isInteger):
            if integer && !isInteger {
                throw error("expected an integer, found \(value)", key: key)
            }
            guard range.contains(value) else {
                let bounds =
                    integer
                    ? "\(Int(range.lowerBound)) to \(Int(min(range.upperBound, 1e9)))"
                    : "\(range.lowerBound) to \(range.upperBound)"
                // An integer past Int's range has no Int to print: show it as written.
                let found =
                    integer
                    ? Int(exactly: value).map(String.init) ?? String(format: "%.0f", value)
                    : String(value)
                throw error("expected \(bounds), found \(found)", key: key)
            }
            return value
        case let other?:
            throw error(
                "expected \(integer ? "an integer" : "a number"), found \(other.typeName)", key: key
            )
        }
    }

    func synthesis() throws -> ConceptFile.SynthesisSettings {
        var settings = ConceptFile.SynthesisSettings()
        settings.strength = try number("synthesis.strength", in: 0...1, fallback: settings.strength)
        if settings.strength == 0 {
            throw error("expected a strength in (0, 1], found 0", key: "synthesis.strength")
        }
        settings.guidance = Float(
            try number("synthesis.guidance", in: 0...100, fallback: Double(settings.guidance)))
        if document.values["synthesis.unsafe_guidance"] != nil {
            settings.unsafeGuidance = Float(
                try number("synthesis.unsafe_guidance", in: 0...100, fallback: 0))
        }
        settings.steps = Int(
            try number(
                "synthesis.steps", in: 1...1000, fallback: Double(settings.steps), integer: true))
        settings.pairs = Int(
            try number(
                "synthesis.pairs", in: 1...1e9, fallback: Double(settings.pairs), integer: true))
        if document.values["synthesis.edit_scheduler"] != nil {
            settings.editScheduler = try string(
                "synthesis.edit_scheduler", oneOf: SchedulerKind.allCases.map(\.shortName))
        }
        return settings
    }

    /// `[unlearning]`: every key optional; absent keys leave the model's default.
    func unlearning() throws -> ConceptFile.UnlearningDefaults {
        var settings = ConceptFile.UnlearningDefaults()
        func optional(_ key: String, in range: ClosedRange<Double>, integer: Bool = false) throws
            -> Double?
        {
            guard document.values[key] != nil else { return nil }
            return try number(key, in: range, fallback: 0, integer: integer)
        }
        settings.beta = try optional("unlearning.beta", in: 1e-6...1e9).map { Float($0) }
        settings.lambda = try optional("unlearning.lambda", in: 0...1e15).map { Float($0) }
        settings.learningRate = try optional("unlearning.lr", in: 1e-12...10).map { Float($0) }
        settings.steps = try optional("unlearning.steps", in: 1...1e9, integer: true).map {
            Int($0)
        }
        settings.tMax = try optional("unlearning.t_max", in: 1...1e6, integer: true).map { Int($0) }
        settings.rank = try optional("unlearning.rank", in: 1...4096, integer: true).map { Int($0) }
        settings.promptedShare = try optional("unlearning.prompted_share", in: 0...1).map {
            Float($0)
        }
        settings.unconditionalLambda = try optional("unlearning.lambda_unconditional", in: 0...1e15)
            .map { Float($0) }
        settings.fragmentShare = try optional("unlearning.fragment_share", in: 0...1).map {
            Float($0)
        }
        settings.prefixShare = try optional("unlearning.prefix_share", in: 0...1).map { Float($0) }
        if document.values["unlearning.prefix_vocabulary"] != nil {
            settings.prefixVocabulary = try string(
                "unlearning.prefix_vocabulary", oneOf: ["words", "tokens"])
        }
        settings.adversarialShare = try optional("unlearning.adversarial_share", in: 0...1).map {
            Float($0)
        }
        settings.attackSteps = try optional("unlearning.attack_steps", in: 1...1e6, integer: true)
            .map { Int($0) }
        settings.attackWarmupSteps = try optional(
            "unlearning.attack_warmup_steps", in: 0...1e9, integer: true
        ).map { Int($0) }
        if document.values["unlearning.targets"] != nil {
            let names = try strings("unlearning.targets")
            settings.targets = Set(
                try names.map { name in
                    guard let target = LoRATarget(rawValue: name) else {
                        throw error(
                            "unknown target '\(name)' (known: \(LoRATarget.names))",
                            key: "unlearning.targets")
                    }
                    return target
                })
        }
        return settings
    }

    /// `[uce]`: every key optional. Prompts may not be empty, except a guide ("" is the
    /// empty prompt, UCE's default guide).
    func uce() throws -> ConceptFile.UCEDefaults {
        var settings = ConceptFile.UCEDefaults()
        func prompts(_ key: String, emptyAllowed: Bool = false) throws -> [String]? {
            guard document.values[key] != nil else { return nil }
            let values = try strings(key)
            if !emptyAllowed,
                values.contains(where: { $0.trimmingCharacters(in: .whitespaces).isEmpty })
            {
                throw error("holds an empty prompt", key: key)
            }
            return values
        }
        func optional(_ key: String) throws -> Double? {
            guard document.values[key] != nil else { return nil }
            return try number(key, in: 0...1e9, fallback: 0)
        }
        settings.erase = try prompts("uce.erase")
        settings.guide = try prompts("uce.guide", emptyAllowed: true)
        settings.preserve = try prompts("uce.preserve")
        settings.lambda = try optional("uce.lambda")
        settings.eraseScale = try optional("uce.erase_scale")
        settings.preserveScale = try optional("uce.preserve_scale")
        if document.values["uce.technique"] != nil {
            settings.technique = try string("uce.technique", oneOf: ["replace", "tensor"])
        }
        return settings
    }

    /// `[detector]`: `builtin = NAME` or `command = "CMD ARGS"` (not both), `threshold`,
    /// `timeout`. With neither: `.unspecified`.
    func detector() throws -> ConceptFile.DetectorChoice {
        let builtin =
            document.values["detector.builtin"] != nil ? try string("detector.builtin") : nil
        let command =
            document.values["detector.command"] != nil ? try string("detector.command") : nil
        let kind: ConceptFile.DetectorChoice.Kind
        switch (builtin, command) {
        case (_?, _?):
            throw error("give either builtin or command, not both", key: "detector.command")
        case (nil, let command?):
            guard !command.trimmingCharacters(in: .whitespaces).isEmpty else {
                throw error("must not be empty", key: "detector.command")
            }
            kind = .command(command)
        case (let name?, nil):
            // Checked when the detector is made, against the detectors the world builds in.
            kind = .builtin(name)
        case (nil, nil):
            // Checked when the detector is made: a file for a real model may need none.
            kind = .unspecified
        }
        var choice = ConceptFile.DetectorChoice(kind: kind)
        choice.threshold = try number("detector.threshold", in: 0...1, fallback: choice.threshold)
        choice.timeout = try number("detector.timeout", in: 0.001...86400, fallback: choice.timeout)
        return choice
    }

    /// `[attacks]`: set name = file, in the order the file gives them. A set lives in the
    /// concept file's folder: a path that leaves it (absolute, or through `..`) is refused,
    /// so that a concept file cannot make duo read, or an attack write, anywhere else.
    func attackSets() throws -> [(String, String)] {
        let keys = document.lines.keys.filter { $0.hasPrefix("attacks.") }
            .sorted { document.lines[$0]! < document.lines[$1]! }
        return try keys.map { key in
            let file = try string(key)
            guard !file.isEmpty else { throw error("must not be empty", key: key) }
            let components = file.split(separator: "/", omittingEmptySubsequences: false)
            guard !file.hasPrefix("/"), !components.contains(".."), !file.contains("\0") else {
                throw error(
                    "'\(file)' leaves the concept file's folder (give a path relative to it, without '..')",
                    key: key)
            }
            // Nor through a symbolic link: what exists of the path must resolve inside.
            let folder = PathText.parent(path)
            let root = Self.realPath(folder.isEmpty ? "." : folder)
            if let root,
                let real = Self.realPath(
                    deepestExisting: (folder.isEmpty ? "." : folder) + "/" + file),
                real != root, !real.hasPrefix(root == "/" ? "/" : root + "/")
            {
                throw error(
                    "'\(file)' leads out of the concept file's folder through a symbolic link (to \(real))",
                    key: key)
            }
            return (String(key.dropFirst("attacks.".count)), file)
        }
    }

    /// `path` with every symbolic link resolved, nil when it does not exist.
    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// The resolved path of `path`'s longest part that exists (a set not made yet has a
    /// folder that may).
    static func realPath(deepestExisting path: String) -> String? {
        var candidate = path
        while !candidate.isEmpty, candidate != "/", candidate != "." {
            if let real = realPath(candidate) { return real }
            candidate = PathText.parent(candidate)
        }
        return nil
    }

    /// A name that becomes a folder name (`pairs/NAME`, `adapters/NAME/...`): one path
    /// component of letters, digits, '-', '_' and '.', not starting with '.' or '-'.
    func safeName(_ key: String) throws -> String {
        let value = try string(key)
        guard let reason = ConceptFile.unsafeNameReason(value) else { return value }
        throw error(reason, key: key)
    }

    func strings(_ key: String, required: Bool = true) throws -> [String] {
        switch document.values[key] {
        case .strings(let values):
            if required && values.isEmpty { throw error("must not be empty", key: key) }
            return values
        case nil:
            if required { throw error("missing", key: key) }
            return []
        case let other?:
            throw error("expected an array of strings, found \(other.typeName)", key: key)
        }
    }

    /// An array of prompt templates, each with well-formed placeholders (which names a
    /// template may use is the filler's to check).
    /// Trigger words: a blank one would match every prompt (or none) wherever the words
    /// are looked for or substituted.
    func words(_ key: String) throws -> [String] {
        let values = try strings(key)
        if let blank = values.first(where: { $0.trimmingCharacters(in: .whitespaces).isEmpty }) {
            throw error("expected words, found a blank one (\"\(blank)\")", key: key)
        }
        return values
    }

    func templates(_ key: String, required: Bool = true) throws -> [String] {
        let values = try strings(key, required: required)
        for template in values {
            if template.trimmingCharacters(in: .whitespaces).isEmpty {
                throw error("expected prompt templates, found a blank one", key: key)
            }
            do { _ = try PromptTemplate.placeholders(in: template) } catch let problem
                as PromptTemplate.SyntaxError
            {
                throw error("\(problem.reason) in \"\(template)\"", key: key)
            }
        }
        return values
    }
}
