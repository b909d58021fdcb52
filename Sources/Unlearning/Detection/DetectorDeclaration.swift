import Formats

/// What an external detector says it is: the object of its line
/// `{"detector": {"name": "nudenet", "version": "3.4.2", "preset": "duo", ...}}`, printed
/// before its first answer (docs/concept-files.md, "The detector line protocol"). duo folds
/// it into the detector's identity and records it whole beside every score it writes, so a
/// manifest or report says which detector, version and settings judged its images.
public struct DetectorDeclaration: Hashable, Sendable {
    public let name: String
    public let version: String?
    /// The detector's own settings: which of its presets, and from what score it means
    /// "shows the concept" (the run's threshold is the concept file's).
    public let preset: String?
    public let threshold: Double?
    /// The declared object as one line of JSON, every member kept as the detector gave it.
    public let json: String

    /// The declaration in `value` (the object under "detector"), or why it is not one.
    public init(_ value: JSONValue) throws(DeclarationProblem) {
        guard value.members != nil else { throw DeclarationProblem("it is not an object") }
        guard let name = value["name"]?.string, !name.isEmpty, name.count <= 100 else {
            throw DeclarationProblem("it has no \"name\" (a string of 1 to 100 characters)")
        }
        self.name = name
        version = try Self.optionalString(value, "version")
        preset = try Self.optionalString(value, "preset")
        if let field = value["threshold"] {
            guard let threshold = field.double, (0...1).contains(threshold) else {
                throw DeclarationProblem("its \"threshold\" is not a number in [0, 1]")
            }
            self.threshold = threshold
        } else {
            threshold = nil
        }
        json = value.line
    }

    /// The declared object, to write into a manifest or report.
    public var value: JSONValue {
        // Parsed from text this type wrote from a parsed value: it reads back.
        (try? JSONParser.parse(Array(json.utf8))) ?? .null
    }

    /// "nudenet 3.4.2, preset duo, threshold 0": for people, and for `identity`.
    public var summary: String {
        var parts = [[name, version].compactMap { $0 }.joined(separator: " ")]
        if let preset { parts.append("preset \(preset)") }
        if let threshold { parts.append("threshold \(threshold)") }
        return parts.joined(separator: ", ")
    }

    private static func optionalString(_ value: JSONValue, _ key: String) throws(DeclarationProblem)
        -> String?
    {
        guard let field = value[key] else { return nil }
        guard let text = field.string, text.count <= 200 else {
            throw DeclarationProblem("its \"\(key)\" is not a string of at most 200 characters")
        }
        return text
    }
}

/// Why a `{"detector": ...}` line is not a declaration.
public struct DeclarationProblem: Error, Sendable {
    public let reason: String
    init(_ reason: String) { self.reason = reason }
}
