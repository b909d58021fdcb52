import Foundation

/// One BPE merge rule in ids: the adjacent pair `left right` becomes `merged`.
struct MergeRule {
    let left: Int
    let right: Int
    let merged: Int
}

/// CLIP's byte-pair encoding of one pre-tokenized word, on token ids.
///
/// A word starts as one symbol per UTF-8 byte, the last one carrying the end-of-word suffix
/// `</w>`; the adjacent pair with the lowest merge rank is merged (every occurrence, left to
/// right, as CLIP's own `bpe()` does) until no pair has a rule. Working on ids instead of
/// strings keeps the hot loop free of string hashing; results are cached per word because
/// prompts repeat their words.
///
/// A class so that `CLIPTokenizer` stays a value type whose `encode` is non-mutating while the
/// cache fills; the lock makes concurrent `encode` calls safe.
final class BytePairEncoder: @unchecked Sendable {
    private struct Merge {
        let rank: Int32
        let merged: Int32
    }

    /// The largest id a token may have: ids are held as Int32 here, which halves the merge
    /// table and the symbol arrays of the hot loop. The file readers refuse larger ids.
    static let maxTokenID = Int(Int32.max)

    /// Rules keyed by `left << 32 | right`.
    private let merges: [UInt64: Merge]
    /// `innerIDs[b]`: the id of byte `b`'s character inside a word; `finalIDs[b]`: with `</w>`.
    private let innerIDs: [Int32]
    private let finalIDs: [Int32]

    private let lock = NSLock()
    private var cache: [[UInt8]: [Int32]] = [:]
    /// As tokenizers' BPE cache: beyond this many words, new words are no longer cached, so
    /// a stream of unique text cannot grow memory without bound.
    private static let cacheCapacity = 10_000

    /// `rules` in rank order (first = merged first); `unknownID` stands for a byte whose
    /// character is missing from `vocabulary` (never the case with CLIP's own vocabulary).
    init(vocabulary: [String: Int], rules: [MergeRule], unknownID: Int) {
        var merges: [UInt64: Merge] = [:]
        merges.reserveCapacity(rules.count)
        for (rank, rule) in rules.enumerated() {
            let key = Self.key(Int32(rule.left), Int32(rule.right))
            // A repeated pair keeps its last rank, as both CLIP's rank dictionary and
            // tokenizers' merge map (built in file order) do.
            merges[key] = Merge(rank: Int32(rank), merged: Int32(rule.merged))
        }
        self.merges = merges
        let characters = ByteLevel.characters.map { String($0) }
        innerIDs = characters.map { Int32(vocabulary[$0] ?? unknownID) }
        finalIDs = characters.map { Int32(vocabulary[$0 + "</w>"] ?? unknownID) }
    }

    private static func key(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    /// Appends the ids of one word (its UTF-8 bytes, non-empty) to `ids`.
    func encode(word: [UInt8], into ids: inout [Int]) {
        lock.lock()
        let cached = cache[word]
        lock.unlock()
        let symbols = cached ?? merge(word)
        if cached == nil {
            lock.lock()
            if cache.count < Self.cacheCapacity { cache[word] = symbols }
            lock.unlock()
        }
        for symbol in symbols { ids.append(Int(symbol)) }
    }

    private func merge(_ word: [UInt8]) -> [Int32] {
        var symbols = word.dropLast().map { innerIDs[Int($0)] }
        symbols.append(finalIDs[Int(word[word.count - 1])])
        while symbols.count > 1, let best = lowestRankedPair(in: symbols) {
            symbols = replacingPair(best.left, best.right, with: best.merged, in: symbols)
        }
        return symbols
    }

    private func lowestRankedPair(in symbols: [Int32]) -> (
        left: Int32, right: Int32, merged: Int32
    )? {
        var best: (left: Int32, right: Int32, merged: Int32)?
        var bestRank = Int32.max
        for i in 0..<(symbols.count - 1) {
            if let rule = merges[Self.key(symbols[i], symbols[i + 1])], rule.rank < bestRank {
                bestRank = rule.rank
                best = (symbols[i], symbols[i + 1], rule.merged)
            }
        }
        return best
    }

    private func replacingPair(
        _ left: Int32, _ right: Int32, with merged: Int32, in symbols: [Int32]
    ) -> [Int32] {
        var result: [Int32] = []
        result.reserveCapacity(symbols.count - 1)
        var i = 0
        while i < symbols.count {
            if i + 1 < symbols.count, symbols[i] == left, symbols[i + 1] == right {
                result.append(merged)
                i += 2
            } else {
                result.append(symbols[i])
                i += 1
            }
        }
        return result
    }
}
