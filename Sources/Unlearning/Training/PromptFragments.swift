import Tensor

/// Fragments of a pair's prompts, for erasure that holds outside the caption grammar the
/// pairs were made with: a prompt of a few words, the concept word repeated, the concept
/// with or without its scene (docs/experiments/fragments.md). A prompted pair drawn for a
/// fragment is conditioned on a random subset of its unsafe prompt's words that keeps every
/// concept word, and its output-preserving term on the same words less the concept's.
public enum PromptFragments {
    /// Uniform draws one fragment takes for a prompt of `wordCount` words.
    public static func drawCount(wordCount: Int) -> Int { wordCount + 3 }

    /// The unsafe fragment and its safe counterpart. Each word is kept with one probability
    /// drawn per fragment from [0, 1), so that lengths spread from the concept word alone to
    /// the whole caption (a concept word is always kept); a quarter of fragments repeat the
    /// first concept word 2 to 4 times where it stands. A prompt without a concept word is returned whole (its safe
    /// side too), so that no pair trains on a prompt that no longer names what it shows.
    public static func make(
        unsafePrompt: String, safePrompt: String, conceptWords: Set<String>, draws: [Float]
    ) -> (unsafe: String, safe: String) {
        let words = unsafePrompt.split(separator: " ").map(String.init)
        precondition(
            draws.count >= drawCount(wordCount: words.count), "draws for \(words.count) words")
        let isConcept = words.map { conceptWords.contains($0.lowercased()) }
        guard let first = isConcept.firstIndex(of: true) else { return (unsafePrompt, safePrompt) }
        let repeats = draws[words.count] < 0.25 ? 2 + min(Int(draws[words.count + 1] * 3), 2) : 1
        let keep = draws[words.count + 2]
        var unsafe: [String] = []
        var safe: [String] = []
        for (i, word) in words.enumerated() where isConcept[i] || draws[i] < keep {
            unsafe += Array(repeating: word, count: i == first ? repeats : 1)
            if !isConcept[i] { safe.append(word) }
        }
        return (unsafe.joined(separator: " "), safe.joined(separator: " "))
    }
}
