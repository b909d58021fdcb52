import Foundation

/// A concept file, `concepts/<name>.toml`: what a concept is, the words that bring it,
/// and the prompt templates `duo synthesize` turns into (unsafe, safe) prompt pairs.
///
/// The format (a TOML subset, see `TOMLDocument`) is documented at the top of each file.
/// Keys: `name`, `description`, `kind` ("attribute" or "object"); `[words]` `explicit`,
/// `synonyms`, `implicit`; `[prompts]` `unsafe` and `safe` (paired by index, so the same
/// length) and optional `keep` (prompts whose images must not change).
public struct ConceptFile: Hashable, Sendable {
    public var path: String
    public var name: String
    public var description: String
    public var kind: String
    public var explicitWords: [String]
    public var synonyms: [String]
    public var implicitTriggers: [String]
    /// Templates bringing the concept; `safePrompts[i]` is `unsafePrompts[i]` without it.
    public var unsafePrompts: [String]
    public var safePrompts: [String]
    public var keepPrompts: [String]

    /// Every key a concept file may hold; any other is an error (it is most likely a typo).
    static let knownKeys: Set<String> = [
        "name", "description", "kind", "words", "words.explicit", "words.synonyms",
        "words.implicit", "prompts", "prompts.unsafe", "prompts.safe", "prompts.keep",
    ]

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
        name = try fields.string("name")
        description = try fields.string("description")
        kind = try fields.string("kind", oneOf: ["attribute", "object"])
        explicitWords = try fields.strings("words.explicit")
        synonyms = try fields.strings("words.synonyms")
        implicitTriggers = try fields.strings("words.implicit")
        unsafePrompts = try fields.templates("prompts.unsafe")
        safePrompts = try fields.templates("prompts.safe")
        keepPrompts = try fields.templates("prompts.keep", required: false)
        guard unsafePrompts.count == safePrompts.count else {
            throw fields.error(
                "has \(safePrompts.count) prompts but prompts.unsafe has \(unsafePrompts.count)",
                key: "prompts.safe")
        }
    }
}

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
        let unknown = document.lines.keys.filter { !ConceptFile.knownKeys.contains($0) }
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
        case .strings: throw error("expected a string, found an array", key: key)
        case nil: throw error("missing", key: key)
        }
    }

    func strings(_ key: String, required: Bool = true) throws -> [String] {
        switch document.values[key] {
        case .strings(let values):
            if required && values.isEmpty { throw error("must not be empty", key: key) }
            return values
        case .string: throw error("expected an array of strings, found a string", key: key)
        case nil:
            if required { throw error("missing", key: key) }
            return []
        }
    }

    /// An array of prompt templates, each using only the placeholders templates know.
    func templates(_ key: String, required: Bool = true) throws -> [String] {
        let values = try strings(key, required: required)
        for template in values {
            if let bad = PromptTemplate.unknownPlaceholder(in: template) {
                throw error("unknown placeholder '{\(bad)}' in \"\(template)\"", key: key)
            }
        }
        return values
    }
}
