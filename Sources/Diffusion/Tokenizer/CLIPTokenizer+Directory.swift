import Formats
import Foundation

extension CLIPTokenizer {
    /// Loads the tokenizer of a diffusers folder's `tokenizer/`: `vocab.json` (token → id),
    /// `merges.txt` (one merge `a b` per line, ranked by line, after a `#version` line) and,
    /// when present, `tokenizer_config.json` (`model_max_length`, special tokens,
    /// `added_tokens_decoder`) and `special_tokens_map.json` (overriding the special tokens).
    /// Without a config, the special tokens are CLIP's and `maxLength` is 77.
    ///
    /// A folder saved by transformers 5 may hold only `tokenizer.json`; its BPE vocabulary
    /// and merges are read from there when `vocab.json` is absent.
    ///
    /// - Throws: `ModelError` naming the file, and the line or key, with what was expected.
    public init(directory: String) throws {
        var vocabularyPath = (directory as NSString).appendingPathComponent("vocab.json")
        var mergesPath = (directory as NSString).appendingPathComponent("merges.txt")
        let combinedPath = (directory as NSString).appendingPathComponent("tokenizer.json")
        let vocabulary: [String: Int]
        let merges: [MergeLine]
        if !FileManager.default.fileExists(atPath: vocabularyPath),
            FileManager.default.fileExists(atPath: combinedPath)
        {
            (vocabulary, merges) = try Self.readCombined(combinedPath)
            (vocabularyPath, mergesPath) = (combinedPath, combinedPath)
        } else {
            vocabulary = try Self.readVocabulary(vocabularyPath)
            merges = try Self.readMerges(mergesPath)
        }
        var rules: [MergeRule] = []
        rules.reserveCapacity(merges.count)
        for merge in merges {
            guard let rule = Self.rule(for: merge.pair, in: vocabulary) else {
                let found = Self.quoted(merge.text)
                throw ModelError(
                    file: mergesPath,
                    "line \(merge.line): expected two tokens of vocab.json whose join is one too,"
                        + " found \(found)")
            }
            rules.append(rule)
        }
        let config = try TokenizerConfig(directory: directory)
        let resolved = try config.resolve(vocabulary: vocabulary, vocabularyFile: vocabularyPath)
        self.init(
            vocabulary: vocabulary, rules: rules, maxLength: config.maxLength,
            special: resolved.special, addedTokens: resolved.added)
    }

    private static func contents(of path: String, expected: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError(file: path, "missing or unreadable (expected \(expected))")
        }
        return Array(data)
    }

    /// vocab.json: one JSON object of token string → non-negative integer id.
    static func readVocabulary(_ path: String) throws -> [String: Int] {
        let expected = "a JSON object of token string → integer id, CLIP's BPE vocabulary"
        let parsed: JSONValue
        do {
            parsed = try JSONParser.parse(try contents(of: path, expected: expected))
        } catch let error as JSONParseError {
            throw ModelError(
                file: path,
                "not valid JSON at byte \(error.offset): \(error.message) (expected \(expected))")
        }
        guard case .object(let members) = parsed, !members.isEmpty else {
            throw ModelError(file: path, "expected \(expected), found \(describe(parsed))")
        }
        var vocabulary: [String: Int] = [:]
        vocabulary.reserveCapacity(members.count)
        for (token, value) in members {
            guard let id = tokenID(value) else {
                throw ModelError(
                    file: path, key: token, "expected \(idRange), found \(describe(value))")
            }
            vocabulary[token] = id
        }
        return vocabulary
    }

    /// What a token id must be, for error messages.
    static let idRange = "an integer id from 0 to \(BytePairEncoder.maxTokenID)"

    /// An integer token id the encoder can hold; nil for anything else.
    static func tokenID(_ value: JSONValue) -> Int? {
        guard case .number(let text) = value else { return nil }
        return tokenID(text)
    }

    /// `text` as a token id the encoder can hold: a decimal integer in range, else nil.
    static func tokenID(_ text: String) -> Int? {
        guard let id = Int(text), (0...BytePairEncoder.maxTokenID).contains(id) else { return nil }
        return id
    }

    /// A JSON value as an error message shows it: numbers and strings as written.
    static func describe(_ value: JSONValue) -> String {
        switch value {
        case .number(let text): return text
        case .string(let text): return quoted(text)
        case .object(let members) where members.isEmpty: return "an empty object"
        case .object, .array: return "an \(value.typeName)"
        default: return "a \(value.typeName)"
        }
    }

    /// One line of merges.txt: the pair, its line number and text (for error messages).
    typealias MergeLine = (pair: (String, String), line: Int, text: String)

    /// merges.txt: UTF-8 lines `left right`, the first optionally `#version: 0.2`; ranks
    /// follow the line order. Empty lines at the end are allowed, nowhere else.
    static func readMerges(_ path: String) throws -> [MergeLine] {
        let bytes = try contents(of: path, expected: "CLIP's BPE merges, one \"a b\" per line")
        guard let text = String(bytes: bytes, encoding: .utf8) else {
            throw ModelError(
                file: path, "expected UTF-8 text (CLIP's BPE merges), found binary data")
        }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        while let last = lines.last, last.isEmpty || last == "\r" { lines.removeLast() }
        var merges: [MergeLine] = []
        merges.reserveCapacity(lines.count)
        for (index, rawLine) in lines.enumerated() {
            let line = rawLine.hasSuffix("\r") ? rawLine.dropLast() : rawLine
            if index == 0, line.hasPrefix("#version") { continue }
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                let found = quoted(String(line))
                throw ModelError(
                    file: path,
                    "line \(index + 1): expected two tokens separated by one space, found \(found)")
            }
            merges.append(((String(parts[0]), String(parts[1])), index + 1, String(line)))
        }
        return merges
    }

    /// tokenizer.json (the `tokenizers` library's format): `model.vocab` as vocab.json,
    /// `model.merges` as ["a b", ...] or [["a", "b"], ...] in rank order.
    static func readCombined(_ path: String) throws -> ([String: Int], [MergeLine]) {
        let parsed: JSONValue
        do {
            parsed = try JSONParser.parse(
                try contents(of: path, expected: "a tokenizers JSON file"))
        } catch let error as JSONParseError {
            throw ModelError(file: path, "not valid JSON at byte \(error.offset): \(error.message)")
        }
        func member(_ value: JSONValue, _ key: String) -> JSONValue? {
            guard case .object(let members) = value else { return nil }
            return members.first { $0.key == key }?.value
        }
        guard let model = member(parsed, "model"), case .string("BPE")? = member(model, "type"),
            let vocab = member(model, "vocab"), case .object(let entries) = vocab,
            case .array(let mergeList)? = member(model, "merges")
        else {
            throw ModelError(file: path, key: "model", "expected a BPE model with vocab and merges")
        }
        var vocabulary: [String: Int] = [:]
        for (token, value) in entries {
            guard let id = tokenID(value) else {
                throw ModelError(
                    file: path, key: "model.vocab.\(token)",
                    "expected \(idRange), found \(describe(value))")
            }
            vocabulary[token] = id
        }
        let merges = try mergeList.enumerated().map { index, entry -> MergeLine in
            switch entry {
            case .string(let text):
                let parts = text.split(separator: " ", omittingEmptySubsequences: false)
                if parts.count == 2 {
                    return ((String(parts[0]), String(parts[1])), index + 1, text)
                }
            case .array(let pair):
                if pair.count == 2, case .string(let a) = pair[0], case .string(let b) = pair[1] {
                    return ((a, b), index + 1, a + " " + b)
                }
            default: break
            }
            throw ModelError(
                file: path, key: "model.merges",
                "entry \(index + 1): expected \"a b\" or [\"a\", \"b\"], found \(describe(entry))")
        }
        return (vocabulary, merges)
    }

    /// `text` in quotes with control characters escaped, cut to keep messages on one short line.
    static func quoted(_ text: String) -> String {
        let limit = 40
        let shown = text.count > limit ? String(text.prefix(limit)) + "…" : text
        return String(reflecting: shown)
    }
}
