/// Random word prefixes on a pair's prompts, against attacks that put words before a prompt
/// (UnlearnDiffAtk optimizes a prefix of tokens; on the embedded model the prefixes it
/// finds are words of the world's captions). A prompted pair drawn for a prefix is
/// conditioned on 1 to `maxWords` words drawn from the pairs' own prompt words, the
/// concept's excepted, before each of its prompts (the same words before both), so that the
/// DPO term learns to drop the concept whatever comes before the caption, and the
/// output-preserving term to keep the rest.
public enum PromptPrefixes {
    /// UnlearnDiffAtk's prefix length (OPTML-Group/Diffusion-MU-Attack, `k` 5).
    public static let maxWords = 5

    /// Uniform draws one prefix takes.
    public static let drawCount = 1 + maxWords

    /// The words prefixes are drawn from: every word of `prompts` but the concept's, each
    /// once, in sorted order (so that the draws alone decide a prefix).
    public static func vocabulary(prompts: [String], conceptWords: Set<String>) -> [String] {
        let words = prompts.flatMap { $0.split(separator: " ").map { $0.lowercased() } }
        return Set(words).subtracting(conceptWords).sorted()
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
}
