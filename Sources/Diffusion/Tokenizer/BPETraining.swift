import Foundation
import Formats

/// Learns a CLIP-style byte-level BPE vocabulary for a closed word list (a world's
/// vocabulary), so that every word of the list is one token and the result is an ordinary
/// `vocab.json` + `merges.txt` that transformers' CLIPTokenizer reads too.
///
/// Training is Sennrich et al. 2016's: start from bytes (the last carrying `</w>`), then
/// repeatedly merge the most frequent adjacent pair (ties: the smallest pair in string
/// order, for determinism) until every word is one symbol. Encoding a listed word applies
/// the merges in the same order, so it ends as the same single symbol.
public enum BPETraining {
    public static func train(words: [String]) -> (
        vocabulary: [String: Int], merges: [(String, String)]
    ) {
        var symbols = Set(words.map { $0.lowercased() }).sorted().map(symbolize)
        var merges: [(String, String)] = []
        while let pair = mostFrequentPair(in: symbols) {
            merges.append(pair)
            symbols = symbols.map { merge(pair, in: $0) }
        }
        return (vocabulary(merges: merges), merges)
    }

    /// A word as byte-level characters, the last one with `</w>`.
    static func symbolize(_ word: String) -> [String] {
        var parts = word.utf8.map { ByteLevel.token(for: [$0]) }
        if !parts.isEmpty { parts[parts.count - 1] += "</w>" }
        return parts
    }

    private static func mostFrequentPair(in words: [[String]]) -> (String, String)? {
        var counts: [String: (pair: (String, String), count: Int)] = [:]
        for word in words where word.count > 1 {
            for i in 0..<(word.count - 1) {
                let key = word[i] + " " + word[i + 1]
                counts[key, default: ((word[i], word[i + 1]), 0)].count += 1
            }
        }
        let best = counts.max { a, b in
            a.value.count != b.value.count ? a.value.count < b.value.count : a.key > b.key
        }
        return best?.value.pair
    }

    private static func merge(_ pair: (String, String), in word: [String]) -> [String] {
        var out: [String] = []
        var i = 0
        while i < word.count {
            if i + 1 < word.count, word[i] == pair.0, word[i + 1] == pair.1 {
                out.append(pair.0 + pair.1)
                i += 2
            } else {
                out.append(word[i])
                i += 1
            }
        }
        return out
    }

    /// CLIP's vocabulary layout: the 256 byte characters in CLIP's order (printable bytes,
    /// then the rest), the same with `</w>`, one token per merge, then the special tokens.
    static func vocabulary(merges: [(String, String)]) -> [String: Int] {
        let printable = Array(0x21...0x7E) + Array(0xA1...0xAC) + Array(0xAE...0xFF)
        let order = printable + (0..<256).filter { !printable.contains($0) }
        let base = order.map { ByteLevel.token(for: [UInt8($0)]) }
        let tokens =
            base + base.map { $0 + "</w>" } + merges.map { $0.0 + $0.1 }
            + [CLIPTokenizer.startOfText, CLIPTokenizer.endOfText]
        var vocabulary: [String: Int] = [:]
        for token in tokens where vocabulary[token] == nil { vocabulary[token] = vocabulary.count }
        return vocabulary
    }

    /// Writes a diffusers `tokenizer/` folder: vocab.json, merges.txt, tokenizer_config.json
    /// and special_tokens_map.json, as SD 1.x ships them (pad = eos, max length `maxLength`).
    public static func writeFolder(
        _ directory: String, vocabulary: [String: Int], merges: [(String, String)], maxLength: Int
    ) throws {
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true)
        let entries = vocabulary.sorted { $0.value < $1.value }
            .map { "\(jsonQuoted($0.key)): \($0.value)" }
        try write("{" + entries.joined(separator: ", ") + "}", to: directory + "/vocab.json")
        try write(
            (["#version: 0.2"] + merges.map { "\($0.0) \($0.1)" }).joined(separator: "\n") + "\n",
            to: directory + "/merges.txt")
        let special = """
            "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", \
            "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>"
            """
        try write(
            "{\(special), \"model_max_length\": \(maxLength), \"tokenizer_class\": \"CLIPTokenizer\", "
                + "\"do_lower_case\": true}\n", to: directory + "/tokenizer_config.json")
        try write("{\(special)}\n", to: directory + "/special_tokens_map.json")
    }

    private static func write(_ text: String, to path: String) throws {
        do {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            throw ModelError(file: path, "cannot write: \(FileProblem.reason(error))")
        }
    }
}
