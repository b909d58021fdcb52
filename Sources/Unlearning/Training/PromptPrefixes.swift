import Diffusion
import Foundation

/// Random word prefixes on a pair's prompts, against attacks that put words before a prompt
/// (UnlearnDiffAtk optimizes a prefix of tokens over the whole vocabulary). A prompted pair
/// drawn for a prefix is conditioned on 1 to `maxWords` whole words of the tokenizer's
/// vocabulary, none of the concept's (explicit, synonym or implicit), before each of its
/// prompts (the same words before both), so that the DPO term learns to drop the concept
/// whatever comes before the caption, and the output-preserving term to keep the rest.
public enum PromptPrefixes {
    /// UnlearnDiffAtk's prefix length (OPTML-Group/Diffusion-MU-Attack, `k` 5).
    public static let maxWords = 5

    /// Uniform draws one prefix takes.
    public static let drawCount = 1 + maxWords

    /// The words prefixes are drawn from: every word of `words` but the concept's (each
    /// word of a concept phrase counts), each once, in sorted order (so that the draws alone
    /// decide a prefix).
    public static func vocabulary(words: [String], conceptWords: [String]) -> [String] {
        let banned = Set(
            conceptWords.flatMap { $0.lowercased().split(separator: " ") }.map(String.init))
        return Set(words.map { $0.lowercased() }).subtracting(banned).sorted()
    }

    /// The tokenizer's whole-word tokens that a prompt can hold and that tokenize back to
    /// themselves, less the concept's words.
    public static func vocabulary(tokenizer: CLIPTokenizer, conceptWords: [String]) -> [String] {
        let words = tokenizer.wordTokens.filter { token in
            let word = token.word
            return !word.trimmingCharacters(in: .whitespaces).isEmpty
                && word.unicodeScalars.allSatisfy {
                    !CharacterSet.controlCharacters.contains($0)
                        && !CharacterSet.whitespaces.contains($0)
                } && tokenizer.tokenIDs(word) == [token.id]
        }.map(\.word)
        return vocabulary(words: words, conceptWords: conceptWords)
    }

    /// The prompts with the prefix `draws` pick: its length from draws[0], its words from
    /// the rest. Prompts are returned as they are when the vocabulary is empty.
    public static func make(
        unsafePrompt: String, safePrompt: String, vocabulary: [String], draws: [Float]
    ) -> (unsafe: String, safe: String) {
        precondition(draws.count >= drawCount, "a prefix takes \(drawCount) draws")
        guard !vocabulary.isEmpty else { return (unsafePrompt, safePrompt) }
        let length = 1 + min(Int(draws[0] * Float(maxWords)), maxWords - 1)
        let prefix = draws[1...length].map {
            vocabulary[min(Int($0 * Float(vocabulary.count)), vocabulary.count - 1)]
        }.joined(separator: " ")
        return (prefix + " " + unsafePrompt, prefix + " " + safePrompt)
    }

    /// The tokenizer's tokens a `tokens` prefix draws from: every id but the special tokens
    /// (UnlearnDiffAtk's prefix ranges over the whole vocabulary, byte-level pieces
    /// included), less those that decode to one of the concept's words.
    public static func tokenVocabulary(tokenizer: CLIPTokenizer, conceptWords: [String]) -> [Int] {
        let banned = Set(
            conceptWords.flatMap { $0.lowercased().split(separator: " ") }.map(String.init))
        let special: Set = [tokenizer.bosTokenID, tokenizer.eosTokenID, tokenizer.padTokenID]
        return (0..<tokenizer.vocabularySize).filter {
            !special.contains($0) && !banned.contains(tokenizer.decode([$0]).lowercased())
        }
    }

    /// The prompts after a prefix of 1 to `maxWords` tokens of `tokens` that `draws` pick
    /// (its length from draws[0]), the same before both: the prefix's and the prompt's tokens
    /// decoded together, blanks made single spaces, as UnlearnDiffAtk writes the prompts it
    /// checks (a last prefix token without an end of word runs into the prompt's first word).
    public static func make(
        unsafePrompt: String, safePrompt: String, tokens: [Int], tokenizer: CLIPTokenizer,
        draws: [Float]
    ) -> (unsafe: String, safe: String) {
        precondition(draws.count >= drawCount, "a prefix takes \(drawCount) draws")
        guard !tokens.isEmpty else { return (unsafePrompt, safePrompt) }
        let length = 1 + min(Int(draws[0] * Float(maxWords)), maxWords - 1)
        let prefix = draws[1...length].map {
            tokens[min(Int($0 * Float(tokens.count)), tokens.count - 1)]
        }
        func prefixed(_ prompt: String) -> String {
            tokenizer.decode(prefix + tokenizer.tokenIDs(prompt))
                .split(whereSeparator: { $0.isWhitespace }).joined(separator: " ")
        }
        return (prefixed(unsafePrompt), prefixed(safePrompt))
    }

    /// The prompts with one of an attack's `prefixes` (`AdversarialPrefixes`), picked by
    /// `draw`, before the unsafe prompt only: an attack's prefix may hold the concept's words
    /// or evoke the concept on the original model, whose output on it the output-preserving
    /// term must not keep, so that term sees the safe prompt as it is.
    public static func make(
        unsafePrompt: String, safePrompt: String, prefixes: [String], draw: Float
    ) -> (unsafe: String, safe: String) {
        guard !prefixes.isEmpty else { return (unsafePrompt, safePrompt) }
        let prefix = prefixes[min(Int(draw * Float(prefixes.count)), prefixes.count - 1)]
        return (prefix + " " + unsafePrompt, safePrompt)
    }
}
