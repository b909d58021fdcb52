/// An object's members in order: what settings, manifests and logs are written from.
public typealias JSONFields = [(key: String, value: JSONValue)]

/// JSON text from a `JSONValue`: members in the order given, numbers as written in the
/// value, strings escaped by `jsonQuoted`. The one writer for files duo's strict reader
/// (`JSONParser`) reads back.
extension JSONValue {
    /// A finite number, or null (JSON has no NaN or infinity).
    public static func number(_ value: Double?, format: String = "%.6g") -> JSONValue {
        guard let value, value.isFinite else { return .null }
        return .number(String(format: format, value))
    }

    public static func number(_ value: Int) -> JSONValue { .number(String(value)) }

    /// A number written as Swift prints it (`0.75`, `7.5`, `1e-05`): the shortest text that
    /// reads back as the same value.
    public static func number<T: BinaryFloatingPoint & LosslessStringConvertible>(shortest value: T)
        -> JSONValue
    {
        value.isFinite ? .number(String(value)) : .null
    }

    /// The value as JSON text on one line, `{"a": 1, "b": [2, 3]}`: a line of a .jsonl file,
    /// or a value of safetensors metadata.
    public var line: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let text): return text
        case .string(let s): return jsonQuoted(s)
        case .array(let items): return "[" + items.map(\.line).joined(separator: ", ") + "]"
        case .object(let members):
            return "{"
                + members.map { jsonQuoted($0.key) + ": " + $0.value.line }
                .joined(separator: ", ") + "}"
        }
    }

    /// The value as JSON text: indented by `indent` spaces per level with objects and
    /// arrays of objects on several lines; a scalar array stays on one line.
    public func text(indent: Int = 2) -> String {
        write(level: 0, indent: indent) + "\n"
    }

    private func write(level: Int, indent: Int) -> String {
        let pad = String(repeating: " ", count: (level + 1) * indent)
        let close = String(repeating: " ", count: level * indent)
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let text): return text
        case .string(let s): return jsonQuoted(s)
        case .array(let items):
            guard items.contains(where: \.isContainer) else {
                return "["
                    + items.map { $0.write(level: 0, indent: indent) }.joined(separator: ", ")
                    + "]"
            }
            let lines = items.map { pad + $0.write(level: level + 1, indent: indent) }
            return "[\n" + lines.joined(separator: ",\n") + "\n" + close + "]"
        case .object(let members):
            guard !members.isEmpty else { return "{}" }
            let lines = members.map {
                pad + jsonQuoted($0.key) + ": " + $0.value.write(level: level + 1, indent: indent)
            }
            return "{\n" + lines.joined(separator: ",\n") + "\n" + close + "}"
        }
    }

    private var isContainer: Bool {
        switch self {
        case .object, .array: return true
        default: return false
        }
    }
}
