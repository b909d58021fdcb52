import Foundation

/// A value of the TOML subset duo's settings files (concept files) use.
public enum TOMLValue: Hashable, Sendable {
    case string(String)
    case strings([String])
    /// An integer or a decimal float (`7`, `0.75`, `1e-4`); `isInteger` when written without
    /// a fraction or exponent.
    case number(Double, isInteger: Bool)
    case bool(Bool)

    /// What the value is, for error messages ("expected a number, found a string").
    public var typeName: String {
        switch self {
        case .string: return "a string"
        case .strings: return "an array of strings"
        case .number(_, let isInteger): return isInteger ? "an integer" : "a number"
        case .bool: return "a boolean"
        }
    }
}

/// An error in a TOML file: one line naming the file, the line and, where one is involved,
/// the key: `concepts/stripes.toml:12: key 'words.synonyms': expected a string`.
public struct TOMLError: Error, Hashable, Sendable, CustomStringConvertible {
    public var path: String
    public var line: Int
    /// The full key (`table.key`), nil for errors outside any key (a bad header).
    public var key: String?
    public var reason: String

    public init(path: String, line: Int, key: String?, reason: String) {
        self.path = path
        self.line = line
        self.key = key
        self.reason = reason
    }

    public var description: String {
        let keyPart = key.map { "key '\($0)': " } ?? ""
        // Line 0: the whole file (it cannot be read), no line of it.
        return (line > 0 ? "\(path):\(line): " : "\(path): ") + keyPart + reason
    }
}

/// A parsed TOML document of the subset: `[table]` headers, `key = "string"` and
/// `key = ["string", ...]` (arrays may span lines), `#` comments. Keys are stored in full
/// (`table.key`) with the line they were set on.
public struct TOMLDocument: Sendable {
    public var values: [String: TOMLValue] = [:]
    /// The line each key (and each table, by its name) was defined on.
    public var lines: [String: Int] = [:]

    /// Parses `text`; `path` only names the file in errors.
    public init(parsing text: String, path: String) throws {
        var reader = TOMLReader(text: text, path: path)
        var table: String?
        while let token = try reader.nextStatement() {
            switch token {
            case .table(let name, let line):
                guard lines[name] == nil else {
                    throw reader.error("table '\(name)' defined twice")
                }
                table = name
                reader.table = name
                lines[name] = line
            case .pair(let key, let value, let line):
                let fullKey = table.map { "\($0).\(key)" } ?? key
                guard values[fullKey] == nil else {
                    throw reader.error("defined twice", key: fullKey)
                }
                values[fullKey] = value
                lines[fullKey] = line
            }
        }
    }
}

/// A scanner over the subset, one statement at a time, counting lines.
struct TOMLReader {
    enum Statement {
        case table(String, line: Int)
        case pair(key: String, value: TOMLValue, line: Int)
    }

    let path: String
    private let chars: [Character]
    private var position = 0
    private(set) var line = 1
    private var key: String?
    /// The table the statements being read belong to, so errors name keys in full.
    var table: String?

    init(text: String, path: String) {
        self.path = path
        // Scalar by scalar: as one Character, "\r\n" would never equal "\n".
        chars = text.unicodeScalars.map(Character.init)
    }

    func error(_ reason: String, key: String? = nil) -> TOMLError {
        let bare = self.key.map { name in table.map { "\($0).\(name)" } ?? name }
        return TOMLError(path: path, line: line, key: key ?? bare, reason: reason)
    }

    /// The next header or key-value pair, nil at the end of the text.
    mutating func nextStatement() throws -> Statement? {
        key = nil
        skipBlank(newlines: true)
        guard let c = peek() else { return nil }
        let startLine = line
        let statement: Statement
        if c == "[" {
            position += 1
            let name = try bareKey()
            guard take("]") else { throw error("expected ']' after table name '\(name)'") }
            statement = .table(name, line: startLine)
        } else {
            let name = try bareKey()
            key = name
            skipBlank(newlines: false)
            guard take("=") else { throw error("expected '=' after the key") }
            skipBlank(newlines: false)
            statement = .pair(key: name, value: try value(), line: startLine)
        }
        skipBlank(newlines: false)
        if let c = peek(), c != "\n" { throw error("unexpected '\(c)' after the value") }
        return statement
    }

    private mutating func value() throws -> TOMLValue {
        if take("\"") { return .string(try stringBody()) }
        if let c = peek(), c.isNumber || c == "-" || c == "+" { return try number() }
        if let c = peek(), c.isLetter { return try boolean() }
        guard take("[") else {
            throw error("expected a string, a number, a boolean or an array of strings")
        }
        var items: [String] = []
        while true {
            skipBlank(newlines: true)
            if take("]") { return .strings(items) }
            guard take("\"") else { throw error("expected a string in the array") }
            items.append(try stringBody())
            skipBlank(newlines: true)
            if take("]") { return .strings(items) }
            guard take(",") else { throw error("expected ',' or ']' in the array") }
        }
    }

    /// A decimal integer or float; `_` between digits is allowed, as TOML does.
    private mutating func number() throws -> TOMLValue {
        var text = ""
        while let c = peek(), c.isASCII, c.isNumber || "+-.eE_".contains(c) {
            text.append(c)
            position += 1
        }
        let digits = text.replacingOccurrences(of: "_", with: "")
        guard let value = Double(digits), value.isFinite else {
            throw error("'\(text)' is not a number")
        }
        let isInteger = !digits.contains(where: { ".eE".contains($0) })
        // Numbers are held as Double, exact for integers up to 2^53, and TOML asks for an
        // error where an integer cannot be kept losslessly; readers then convert with Int(_:).
        if isInteger {
            guard let exact = Int(digits), exact.magnitude <= Self.maxExactInteger else {
                throw error("integer '\(text)' is out of range (at most 2^53 in magnitude)")
            }
        }
        return .number(value, isInteger: isInteger)
    }

    private static let maxExactInteger: UInt = 1 << 53

    private mutating func boolean() throws -> TOMLValue {
        var word = ""
        while let c = peek(), c.isASCII, c.isLetter {
            word.append(c)
            position += 1
        }
        switch word {
        case "true": return .bool(true)
        case "false": return .bool(false)
        default: throw error("'\(word)' is not a value (strings are written in double quotes)")
        }
    }

    /// A basic string's characters after its opening quote, through the closing one.
    private mutating func stringBody() throws -> String {
        var text = ""
        while let c = peek(), c != "\n" {
            position += 1
            if c == "\"" { return text }
            if c != "\\" {
                text.append(c)
                continue
            }
            let escapes: [Character: Character] = ["\"": "\"", "\\": "\\", "n": "\n", "t": "\t"]
            guard let e = peek(), let unescaped = escapes[e] else {
                throw error("unknown escape in a string (only \\\" \\\\ \\n \\t)")
            }
            position += 1
            text.append(unescaped)
        }
        throw error("unterminated string")
    }

    private mutating func bareKey() throws -> String {
        var name = ""
        while let c = peek(), c.isASCII, c.isLetter || c.isNumber || c == "_" || c == "-" {
            name.append(c)
            position += 1
        }
        guard !name.isEmpty else {
            throw error("expected a key (letters, digits, '_', '-') or a [table]")
        }
        return name
    }

    /// Skips spaces, tabs and comments, and newlines too when `newlines` is set.
    private mutating func skipBlank(newlines: Bool) {
        while let c = peek() {
            if c == "#" {
                while let d = peek(), d != "\n" { position += 1 }
            } else if c == " " || c == "\t" || c == "\r" || (newlines && c == "\n") {
                if c == "\n" { line += 1 }
                position += 1
            } else {
                return
            }
        }
    }

    private func peek() -> Character? { position < chars.count ? chars[position] : nil }

    private mutating func take(_ c: Character) -> Bool {
        guard peek() == c else { return false }
        position += 1
        return true
    }
}
