import Foundation

/// CLIP's byte-level BPE tokenizer, id for id as transformers' `CLIPTokenizer` applies it.
///
/// Text goes through the steps of tokenizers' pipeline, in its order:
/// 1. added tokens that are not `normalized` are matched in the text as given (in SD's
///    folders `<|endoftext|>`, and SD 2's pad token `!`);
/// 2. each run between them is normalized: NFC, then lower-cased (`CLIPNormalizer`);
/// 3. normalized added tokens are matched (in SD's folders `<|startoftext|>`);
/// 4. the remaining runs are split into words by CLIP's pattern (`CLIPPreTokenizer`), which
///    drops whitespace;
/// 5. each word's UTF-8 bytes are byte-pair encoded, `</w>` marking its end (`BytePairEncoder`);
/// 6. bos and eos go around the ids; `encode(_:padTo:)` truncates so that eos stays last and
///    pads with the pad token.
///
/// Safe to share between threads: words are cached behind a lock.
public struct CLIPTokenizer: Sendable {
    /// The length prompts are padded to: `model_max_length` (77 for every CLIP text encoder).
    public let maxLength: Int
    /// `<|startoftext|>`, first in every encoding.
    public let bosTokenID: Int
    /// `<|endoftext|>`, last before any padding.
    public let eosTokenID: Int
    /// What `encode(_:padTo:)` pads with: eos in SD 1.x, `!` (id 0) in SD 2.x.
    public let padTokenID: Int
    /// The number of distinct ids: the vocabulary and any added token beyond it.
    public private(set) var vocabularySize: Int

    /// The smallest and the largest id the tokenizer can give (nil for an empty one): the
    /// text encoder needs an embedding row for each.
    public var idBounds: ClosedRange<Int>? {
        let ids = Set(vocabularyTokens.keys).union(addedTokens.keys)
        guard let low = ids.min(), let high = ids.max() else { return nil }
        return low...high
    }

    /// What stands for a character the vocabulary lacks (eos in CLIP's files).
    private let unknownTokenID: Int
    private let encoder: BytePairEncoder
    private var rawTokens: AddedTokenMatcher
    private var normalizedTokens: AddedTokenMatcher
    /// For `decode`: the vocabulary's token strings and the added tokens, by id.
    private let vocabularyTokens: [Int: String]
    private var addedTokens: [Int: AddedToken]

    public static let startOfText = "<|startoftext|>"
    public static let endOfText = "<|endoftext|>"

    /// The ids of the special roles, already checked against the vocabulary. `unknown`
    /// stands for a byte whose character the vocabulary lacks (never the case with CLIP's).
    struct SpecialIDs {
        let bos: Int
        let eos: Int
        let unknown: Int
        let pad: Int
    }

    init(
        vocabulary: [String: Int], rules: [MergeRule], maxLength: Int, special: SpecialIDs,
        addedTokens: [AddedToken]
    ) {
        self.maxLength = maxLength
        bosTokenID = special.bos
        eosTokenID = special.eos
        padTokenID = special.pad
        unknownTokenID = special.unknown
        encoder = BytePairEncoder(vocabulary: vocabulary, rules: rules, unknownID: special.unknown)
        rawTokens = AddedTokenMatcher(addedTokens.filter { !$0.normalized })
        normalizedTokens = AddedTokenMatcher(addedTokens.filter { $0.normalized })
        var vocabularyTokens: [Int: String] = [:]
        for (token, id) in vocabulary { vocabularyTokens[id] = token }
        self.vocabularyTokens = vocabularyTokens
        self.addedTokens = Dictionary(
            addedTokens.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        vocabularySize = Set(vocabularyTokens.keys).union(self.addedTokens.keys).count
    }

    /// A tokenizer built in code, for a vocabulary that is not in a folder.
    ///
    /// bos is `<|startoftext|>`, eos (and the unknown token) `<|endoftext|>`; these and
    /// `padToken` must be in `vocabulary`, and are matched in text as given, as in transformers'
    /// `CLIPTokenizer(vocab:merges:)`. Merges whose parts or result are missing from
    /// `vocabulary` can never produce a known token and are ignored.
    public init(
        vocabulary: [String: Int], merges: [(String, String)], maxLength: Int = 77,
        padToken: String = "<|endoftext|>"
    ) {
        let roles = [Self.startOfText, Self.endOfText, padToken]
        let ids = roles.map { role -> Int in
            guard let id = vocabulary[role] else {
                preconditionFailure("CLIPTokenizer: \"\(role)\" is not in the vocabulary")
            }
            return id
        }
        let special = SpecialIDs(bos: ids[0], eos: ids[1], unknown: ids[1], pad: ids[2])
        let added = zip(roles, ids).map {
            AddedToken(content: $0, id: $1, normalized: false, special: true)
        }
        let rules = merges.compactMap { Self.rule(for: $0, in: vocabulary) }
        self.init(
            vocabulary: vocabulary, rules: rules, maxLength: maxLength, special: special,
            addedTokens: added)
    }

    /// The rule for the merge `left right`, or nil if a part or the result is not a token.
    static func rule(for merge: (String, String), in vocabulary: [String: Int]) -> MergeRule? {
        guard let left = vocabulary[merge.0], let right = vocabulary[merge.1],
            let merged = vocabulary[merge.0 + merge.1]
        else { return nil }
        return MergeRule(left: left, right: right, merged: merged)
    }

    /// This tokenizer with `content` added as one token with `id` (the text encoder's next
    /// embedding row), matched in the normalized text as transformers' `add_tokens` does
    /// (diffusers' `load_textual_inversion` adds a learned token so): `<Cat>` is matched,
    /// and decoded, as `<cat>`. nil: `content` is empty or already one token of the
    /// vocabulary or the added ones, or `id` is taken.
    public func addingToken(_ content: String, id: Int) -> CLIPTokenizer? {
        guard vocabularyTokens[id] == nil, addedTokens[id] == nil else { return nil }
        let content = String(
            String.UnicodeScalarView(CLIPNormalizer.normalize(Array(content.unicodeScalars)[...])))
        let ids = tokenIDs(content)
        guard !content.isEmpty,
            ids.count != 1
                || vocabularyTokens[ids[0]] != content + "</w>" && addedTokens[ids[0]] == nil
        else { return nil }
        var copy = self
        let token = AddedToken(content: content, id: id, normalized: true, special: false)
        copy.addedTokens[id] = token
        copy.normalizedTokens = AddedTokenMatcher(
            copy.addedTokens.values.filter(\.normalized).sorted { $0.id < $1.id })
        copy.vocabularySize += 1
        return copy
    }

    // MARK: Encoding

    /// bos, the ids of `text`, eos: no truncation, no padding.
    public func encode(_ text: String) -> [Int] {
        var ids = [bosTokenID]
        appendTokenIDs(of: text, to: &ids)
        ids.append(eosTokenID)
        return ids
    }

    /// Exactly `length` ids: bos, the ids of `text` truncated to `length - 2`, eos, then pad
    /// ids, as transformers' `padding="max_length", truncation=True` gives them.
    public func encode(_ text: String, padTo length: Int) -> [Int] {
        precondition(length >= 2, "CLIPTokenizer: padTo \(length) leaves no room for bos and eos")
        var ids = [bosTokenID]
        appendTokenIDs(of: text, to: &ids)
        if ids.count > length - 1 { ids.removeSubrange((length - 1)...) }
        ids.append(eosTokenID)
        ids.append(contentsOf: repeatElement(padTokenID, count: length - ids.count))
        return ids
    }

    /// What `encode(_:padTo: maxLength)` silently drops of `text`: the number of its tokens
    /// past the `maxLength - 2` the model reads, and its words that only the unknown
    /// token stands for (a word-level vocabulary lacks them).
    public func losses(in text: String) -> (truncatedTokens: Int, unknownWords: [String]) {
        let count = tokenIDs(text).count
        let unknown = text.split(whereSeparator: \.isWhitespace).map(String.init).filter { word in
            tokenIDs(word).contains(unknownTokenID) && !word.contains(Self.endOfText)
        }
        return (max(0, count - (maxLength - 2)), unknown)
    }

    /// The ids of `text` alone, without bos and eos.
    public func tokenIDs(_ text: String) -> [Int] {
        var ids: [Int] = []
        appendTokenIDs(of: text, to: &ids)
        return ids
    }

    private func appendTokenIDs(of text: String, to ids: inout [Int]) {
        let scalars = Array(text.unicodeScalars)
        rawTokens.split(scalars[...]) { segment in
            switch segment {
            case .token(let id): ids.append(id)
            case .text(let run): appendNormalizedRun(CLIPNormalizer.normalize(run), to: &ids)
            }
        }
    }

    private func appendNormalizedRun(_ run: [Unicode.Scalar], to ids: inout [Int]) {
        normalizedTokens.split(run[...]) { segment in
            switch segment {
            case .token(let id):
                ids.append(id)
            case .text(let words):
                CLIPPreTokenizer.split(Array(words)) { word in
                    var bytes: [UInt8] = []
                    for scalar in word { UTF8.encode(scalar) { bytes.append($0) } }
                    encoder.encode(word: bytes, into: &ids)
                }
            }
        }
    }

    /// Whole-word tokens of the vocabulary (those ending in `</w>`), by id, with their
    /// word: the search space of a discrete prompt attack.
    public var wordTokens: [(id: Int, word: String)] {
        vocabularyTokens.compactMap { id, token in
            guard token.hasSuffix("</w>"), addedTokens[id] == nil else { return nil }
            let word = decode([id])
            return word.isEmpty ? nil : (id, word)
        }.sorted { $0.id < $1.id }
    }

    // MARK: Decoding

    /// The text of `ids` as transformers' `decode` gives it: each `</w>` becomes a space and
    /// the ends are trimmed; special tokens are kept as written unless skipped.
    /// Unknown ids are left out.
    public func decode(_ ids: [Int], skippingSpecialTokens: Bool = false) -> String {
        var bytes: [UInt8] = []
        for id in ids {
            if let added = addedTokens[id] {
                if !(skippingSpecialTokens && added.special) { bytes += Array(added.content.utf8) }
            } else if let token = vocabularyTokens[id] {
                bytes += ByteLevel.bytes(of: token) ?? Array(token.utf8)
            }
        }
        let text = String(decoding: bytes, as: UTF8.self)
        return text.replacingOccurrences(of: "</w>", with: " ")
            .trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
