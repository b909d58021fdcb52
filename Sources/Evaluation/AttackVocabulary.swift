import Diffusion
import Foundation

/// The words an attack may put in a prompt: whole-word tokens that tokenize back to
/// themselves, minus the concept's own words and synonyms, and minus what a prompt set
/// file cannot hold: byte tokens that decode to control characters or blanks, and words
/// starting with `#` (which would start a comment line).
public enum AttackVocabulary {
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
