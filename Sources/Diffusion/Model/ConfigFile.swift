import Formats
import Foundation

/// A component's `config.json`, with typed reads that fail naming the file and the key.
///
/// Parsed with Formats' strict JSON reader, which keeps `1`, `1.0` and `true` apart.
public struct ConfigFile {
    public let path: String
    public let values: [String: JSONValue]

    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError(file: path, "missing or unreadable (expected a JSON config)")
        }
        let parsed: JSONValue
        do {
            parsed = try JSONParser.parse(Array(data))
        } catch let error as JSONParseError {
            throw ModelError(file: path, "not valid JSON at byte \(error.offset): \(error.message)")
        }
        guard case .object(let members) = parsed else {
            throw ModelError(
                file: path, "expected a JSON object at the top level, found \(parsed.typeName)")
        }
        self.init(path: path, values: Dictionary(members, uniquingKeysWith: { first, _ in first }))
    }

    public init(path: String, values: [String: JSONValue]) {
        self.path = path
        self.values = values
    }

    private func value(_ key: String) -> JSONValue? {
        guard let v = values[key] else { return nil }
        if case .null = v { return nil }
        return v
    }

    private func mismatch(_ key: String, _ expected: String, _ found: JSONValue) -> ModelError {
        ModelError(file: path, key: key, "expected \(expected), found \(Self.describe(found))")
    }

    private static func describe(_ v: JSONValue) -> String {
        switch v {
        case .number(let text): return text
        case .string(let s): return "\"\(s)\""
        case .bool(let b): return String(b)
        default: return "a \(v.typeName)"
        }
    }

    private func missing(_ key: String, _ expected: String) -> ModelError {
        ModelError(file: path, key: key, "missing (expected \(expected))")
    }

    /// Whether `key` is present and not null.
    public func has(_ key: String) -> Bool { value(key) != nil }

    public func int(_ key: String, default fallback: Int? = nil) throws -> Int {
        guard let v = value(key) else {
            if let fallback { return fallback }
            throw missing(key, "an integer")
        }
        guard let n = Self.integer(v) else { throw mismatch(key, "an integer", v) }
        return n
    }

    /// A size or a count (channels, heads, layers): a whole number from 1 to `limit`. A
    /// model built from a zero, a negative or an absurd one would divide by zero, make a
    /// tensor of negative shape, or run out of memory or time before saying why.
    public func size(_ key: String, default fallback: Int? = nil, limit: Int = 1 << 16) throws
        -> Int
    {
        try checkedSize(key, try int(key, default: fallback), limit: limit)
    }

    /// `ints`, each value a size (`size`).
    public func sizes(_ key: String, count: Int, default fallback: Int? = nil, limit: Int = 1 << 16)
        throws -> [Int]
    {
        try ints(key, count: count, default: fallback).map {
            try checkedSize(key, $0, limit: limit)
        }
    }

    private func checkedSize(_ key: String, _ n: Int, limit: Int) throws -> Int {
        guard (1...limit).contains(n) else {
            throw ModelError(
                file: path, key: key, "expected a whole number from 1 to \(limit), found \(n)")
        }
        return n
    }

    /// An integer, also when written as 2.0.
    private static func integer(_ v: JSONValue) -> Int? {
        guard case .number(let text) = v else { return nil }
        if let n = Int(text) { return n }
        guard let d = Double(text), d == d.rounded(), abs(d) < 1e15 else { return nil }
        return Int(d)
    }

    public func float(_ key: String, default fallback: Float? = nil) throws -> Float {
        guard let v = value(key) else {
            if let fallback { return fallback }
            throw missing(key, "a number")
        }
        guard case .number(let text) = v, let d = Double(text) else {
            throw mismatch(key, "a number", v)
        }
        return Float(d)
    }

    public func bool(_ key: String, default fallback: Bool? = nil) throws -> Bool {
        guard let v = value(key) else {
            if let fallback { return fallback }
            throw missing(key, "true or false")
        }
        guard case .bool(let b) = v else { throw mismatch(key, "true or false", v) }
        return b
    }

    public func string(_ key: String, default fallback: String? = nil) throws -> String {
        guard let v = value(key) else {
            if let fallback { return fallback }
            throw missing(key, "a string")
        }
        guard case .string(let s) = v else { throw mismatch(key, "a string", v) }
        return s
    }

    /// An optional string: nil when absent or null.
    public func optionalString(_ key: String) throws -> String? {
        has(key) ? try string(key) : nil
    }

    public func strings(_ key: String) throws -> [String] {
        guard let v = value(key) else { throw missing(key, "a list of strings") }
        guard case .array(let items) = v else { throw mismatch(key, "a list of strings", v) }
        return try items.map { item in
            guard case .string(let s) = item else { throw mismatch(key, "a list of strings", item) }
            return s
        }
    }

    /// An integer or a list of integers, as a list of `count` values (a single integer is
    /// repeated, as diffusers does for per-block settings).
    public func ints(_ key: String, count: Int, default fallback: Int? = nil) throws -> [Int] {
        guard let v = value(key) else {
            if let fallback { return Array(repeating: fallback, count: count) }
            throw missing(key, "an integer or a list of integers")
        }
        guard case .array(let items) = v else {
            return Array(repeating: try int(key), count: count)
        }
        guard items.count == count else {
            throw ModelError(
                file: path, key: key,
                "expected \(count) values (one per block), found \(items.count)")
        }
        return try items.map { item in
            guard let n = Self.integer(item) else { throw mismatch(key, "integers", item) }
            return n
        }
    }

    /// Fails unless `key` is absent, null, or one of `allowed` (config values duo does not
    /// implement must not be silently ignored).
    public func require(_ key: String, in allowed: [String]) throws {
        guard let v = value(key) else { return }
        guard case .string(let s) = v, allowed.contains(s) else {
            throw mismatch(key, "one of \(allowed.joined(separator: ", ")) (what duo supports)", v)
        }
    }

    /// Fails unless `key` is absent, null, or the boolean `expected`.
    public func require(_ key: String, equals expected: Bool) throws {
        guard let v = value(key) else { return }
        guard case .bool(expected) = v else {
            throw mismatch(key, "\(expected) (what duo supports)", v)
        }
    }

    /// Fails unless `key` is absent, null, or the number `expected`.
    public func require(_ key: String, equals expected: Double) throws {
        guard let v = value(key) else { return }
        guard case .number(let text) = v, Double(text) == expected else {
            throw mismatch(key, "\(expected) (what duo supports)", v)
        }
    }
}
