import Formats
import Foundation

/// What a tokenizer folder's `tokenizer_config.json` and `special_tokens_map.json` say: the
/// length prompts are padded to, the special tokens and how each is matched in text.
///
/// How transformers decides whether a special token is matched in normalized text
/// (so `<|ENDOFTEXT|>` counts) or only as written:
/// - `added_tokens_decoder` (written by transformers since 4.34) gives each token's
///   `normalized` flag, and may add tokens beyond the vocabulary (textual inversion);
/// - otherwise, as in SD 1.x/2.x folders, a token is normalized only when every role that
///   names it (`bos_token`, `eos_token`, `unk_token`, `pad_token`) is an AddedToken object
///   with `"normalized": true`; a plain string means as written. In SD 1.x that makes
///   `<|startoftext|>` normalized but `<|endoftext|>` (also the plain-string pad) not.
///   transformers' result for a plain-string eos beside object unk and pad depends on the
///   order it registers them in; no model folder seen declares that mix.
struct TokenizerConfig {
    /// A special role's token as a config file declares it.
    struct Declaration {
        let content: String
        let normalized: Bool
        let file: String
        let key: String
    }

    static let roleKeys = ["bos_token", "eos_token", "unk_token", "pad_token"]
    /// CLIP's context length, used when the config leaves `model_max_length` unset.
    static let defaultMaxLength = 77
    /// Far beyond any text encoder's positions, yet small enough that padding a prompt to
    /// it is cheap: every prompt is padded to `model_max_length`, so a corrupt value must be
    /// refused when the folder is read, not met as a failed allocation at the first prompt.
    static let largestMaxLength = 1 << 16

    private(set) var maxLength = defaultMaxLength
    /// By role key; CLIPTokenizer's own defaults unless a file declares the role.
    private(set) var roles: [String: Declaration] = [:]
    /// `added_tokens_decoder`'s entries, if the config has one, and the file holding it.
    private(set) var decoderTokens: [AddedToken] = []
    private var decoderFile = ""

    init(directory: String) throws {
        for key in Self.roleKeys {
            let content = key == "bos_token" ? CLIPTokenizer.startOfText : CLIPTokenizer.endOfText
            roles[key] = Declaration(content: content, normalized: false, file: "", key: key)
        }
        let configPath = (directory as NSString).appendingPathComponent("tokenizer_config.json")
        if FileManager.default.fileExists(atPath: configPath) {
            let config = try ConfigFile(path: configPath)
            try readRoles(config)
            try readMaxLength(config)
            try readAddedTokensDecoder(config)
        }
        // transformers lets special_tokens_map.json override the config's roles.
        let mapPath = (directory as NSString).appendingPathComponent("special_tokens_map.json")
        if FileManager.default.fileExists(atPath: mapPath) {
            try readRoles(try ConfigFile(path: mapPath))
        }
    }

    private mutating func readRoles(_ file: ConfigFile) throws {
        for key in Self.roleKeys {
            guard let value = file.values[key] else { continue }
            if case .null = value { continue }
            roles[key] = try Self.declaration(value, file: file.path, key: key)
        }
    }

    /// A plain string, or an AddedToken object with a string `content`.
    private static func declaration(_ value: JSONValue, file: String, key: String) throws
        -> Declaration
    {
        let expected = "a token string or an AddedToken object with a string \"content\""
        switch value {
        case .string(let content):
            return Declaration(content: content, normalized: false, file: file, key: key)
        case .object(let members):
            let fields = Dictionary(members, uniquingKeysWith: { first, _ in first })
            guard case .string(let content)? = fields["content"] else {
                throw ModelError(file: file, key: key, "expected \(expected)")
            }
            // transformers' AddedToken defaults `normalized` to `not special`: false here.
            let normalized = try flag(fields["normalized"], default: false, file: file, key: key)
            return Declaration(content: content, normalized: normalized, file: file, key: key)
        default:
            throw ModelError(
                file: file, key: key, "expected \(expected), found \(CLIPTokenizer.describe(value))"
            )
        }
    }

    private static func flag(_ value: JSONValue?, default fallback: Bool, file: String, key: String)
        throws -> Bool
    {
        switch value {
        case nil, .null?: return fallback
        case .bool(let flag)?: return flag
        case let other?:
            throw ModelError(
                file: file, key: key, "expected true or false, found a \(other.typeName)")
        }
    }

    /// transformers writes 1e30 for "no limit"; CLIP's encoder has 77 positions whatever the
    /// config says, so such values fall back to 77.
    private mutating func readMaxLength(_ config: ConfigFile) throws {
        guard let value = config.values["model_max_length"] else { return }
        switch value {
        case .null:
            return
        case .number(let text):
            if let length = Int(text), (2...Self.largestMaxLength).contains(length) {
                maxLength = length
                return
            }
            if let number = Double(text), number >= 1e15 { return }
            fallthrough
        default:
            throw ModelError(
                file: config.path, key: "model_max_length",
                "expected an integer from 2 to \(Self.largestMaxLength) (or 1e15 and above for "
                    + "no limit), found \(CLIPTokenizer.describe(value))")
        }
    }
}

extension TokenizerConfig {
    /// Reads `added_tokens_decoder`: `{"49407": {"content": "<|endoftext|>",
    /// "normalized": false, "special": true, ...}, ...}`.
    private mutating func readAddedTokensDecoder(_ config: ConfigFile) throws {
        let key = "added_tokens_decoder"
        guard let value = config.values[key] else { return }
        if case .null = value { return }
        guard case .object(let entries) = value else {
            throw ModelError(file: config.path, key: key, "expected an object of id → token")
        }
        for (idText, entry) in entries {
            decoderTokens.append(
                try Self.decoderToken(entry, id: idText, file: config.path, key: "\(key).\(idText)")
            )
        }
        decoderFile = config.path
    }

    /// One entry of `added_tokens_decoder`; `normalized` defaults to `not special`, as in
    /// transformers' AddedToken.
    private static func decoderToken(
        _ entry: JSONValue, id idText: String, file: String, key: String
    )
        throws -> AddedToken
    {
        guard let id = CLIPTokenizer.tokenID(idText) else {
            throw ModelError(file: file, key: key, "expected \(CLIPTokenizer.idRange) as the key")
        }
        var fields: [String: JSONValue] = [:]
        if case .object(let members) = entry {
            fields = Dictionary(members, uniquingKeysWith: { first, _ in first })
        }
        guard case .string(let content)? = fields["content"] else {
            let found = CLIPTokenizer.describe(entry)
            throw ModelError(
                file: file, key: key, "expected an object with a string \"content\", found \(found)"
            )
        }
        let special = try flag(fields["special"], default: false, file: file, key: key)
        let normalized = try flag(fields["normalized"], default: !special, file: file, key: key)
        return AddedToken(content: content, id: id, normalized: normalized, special: special)
    }

    /// The special ids and every added token, checked against `vocabulary`
    /// (read from `vocabularyFile`).
    func resolve(vocabulary: [String: Int], vocabularyFile: String) throws
        -> (special: CLIPTokenizer.SpecialIDs, added: [AddedToken])
    {
        let vocabularyName = (vocabularyFile as NSString).lastPathComponent
        for token in decoderTokens {
            if let id = vocabulary[token.content], id != token.id {
                throw ModelError(
                    file: decoderFile, key: "added_tokens_decoder.\(token.id)",
                    "expected id \(id) for \"\(token.content)\" as in \(vocabularyName)")
            }
        }
        var added = decoderTokens
        var ids: [String: Int] = [:]
        for key in Self.roleKeys {
            let role = roles[key]!
            let addedID = added.first(where: { $0.content == role.content })?.id
            guard let id = addedID ?? vocabulary[role.content] else {
                throw ModelError(
                    file: role.file.isEmpty ? vocabularyFile : role.file, key: key,
                    "token \"\(role.content)\" is not in \(vocabularyName)")
            }
            ids[key] = id
            if addedID == nil {
                let normalized = isNormalized(role.content)
                added.append(
                    AddedToken(content: role.content, id: id, normalized: normalized, special: true)
                )
            }
        }
        let special = CLIPTokenizer.SpecialIDs(
            bos: ids["bos_token"]!, eos: ids["eos_token"]!, unknown: ids["unk_token"]!,
            pad: ids["pad_token"]!)
        return (special, added)
    }

    /// A role token without an `added_tokens_decoder` entry: normalized only if every role
    /// naming it says so.
    private func isNormalized(_ content: String) -> Bool {
        roles.values.filter { $0.content == content }.allSatisfy(\.normalized)
    }
}
