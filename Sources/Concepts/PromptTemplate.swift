import Formats

/// Prompt templates of concept files: text with `{name}` placeholders a `PromptFiller`
/// replaces ("{count} striped {shape}"). A template without placeholders is a plain prompt.
public enum PromptTemplate {
    /// A template that cannot be read: an unclosed brace or an empty or odd name.
    public struct SyntaxError: Error, Hashable, Sendable {
        public var reason: String
    }

    /// The placeholder names of `template`, in order, without braces. Names are letters,
    /// digits and '_'.
    public static func placeholders(in template: String) throws -> [String] {
        var names: [String] = []
        var rest = Substring(template)
        while let open = rest.firstIndex(of: "{") {
            let after = rest.index(after: open)
            guard let close = rest[after...].firstIndex(where: { $0 == "}" || $0 == "{" }),
                rest[close] == "}"
            else { throw SyntaxError(reason: "unclosed '{'") }
            let name = String(rest[rest.index(after: open)..<close])
            let allowed = name.unicodeScalars.allSatisfy {
                $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "_")
            }
            guard !name.isEmpty, allowed else {
                throw SyntaxError(reason: "'{\(name)}' is not a placeholder (letters, digits, '_')")
            }
            names.append(name)
            rest = rest[rest.index(after: close)...]
        }
        return names
    }

    /// `template` with each `{name}` of `values` replaced by its value.
    public static func fill(_ template: String, with values: [String: String]) -> String {
        var text = template
        for (name, value) in values.sorted(by: { $0.key < $1.key }) {
            text = text.replacingOccurrences(of: "{\(name)}", with: value)
        }
        return text
    }
}

/// An unsafe prompt and its safe counterpart, for `duo synthesize` (SDEdit pairs).
public struct PromptPair: Hashable, Sendable {
    public var unsafe: String
    public var safe: String

    public init(unsafe: String, safe: String) {
        self.unsafe = unsafe
        self.safe = safe
    }
}
