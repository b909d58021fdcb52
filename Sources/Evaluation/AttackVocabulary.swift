import Diffusion
import Foundation
import Unlearning

/// The token ids a discrete prompt search may use.
public enum AttackVocabulary {
    /// The ids of `space`: every id (`.all`) or the readable whole words (`.words`,
    /// without `forbidden`).
    public static func tokenIDs(
        _ tokenizer: CLIPTokenizer, space: AttackTokenSpace, forbidden: [String]
    ) -> [Int] {
        switch space {
        case .all: return allTokenIDs(tokenizer)
        case .words: return tokenIDs(tokenizer, forbidden: forbidden)
        }
    }

    /// Every id but 0 and the special tokens: Ring-A-Bell's `randint(1, 49406)` on SD 1.4's
    /// tokenizer, whose ids 49406 and 49407 are bos and eos (InversePrompt.ipynb, cells
    /// `mutation` and the population's first draw).
    public static func allTokenIDs(_ tokenizer: CLIPTokenizer) -> [Int] {
        let special: Set = [tokenizer.bosTokenID, tokenizer.eosTokenID, tokenizer.padTokenID]
        return (1..<tokenizer.vocabularySize).filter { !special.contains($0) }
    }

    /// Whole-word tokens that tokenize back to themselves, minus the concept's own words
    /// and synonyms, and minus what a prompt set file cannot hold: byte tokens that decode
    /// to control characters or blanks, and words starting with `#` (which would start a
    /// comment line).
    public static func tokenIDs(_ tokenizer: CLIPTokenizer, forbidden: [String]) -> [Int] {
        let banned = Set(
            forbidden.flatMap { $0.lowercased().split(separator: " ").map(String.init) })
        return tokenizer.wordTokens.filter { token in
            let word = token.word
            let readable =
                !word.trimmingCharacters(in: .whitespaces).isEmpty && !word.hasPrefix("#")
                && word.unicodeScalars.allSatisfy { !CharacterSet.controlCharacters.contains($0) }
            return readable && !banned.contains(word.lowercased())
                && tokenizer.tokenIDs(word) == [token.id]
        }.map(\.id)
    }
}
