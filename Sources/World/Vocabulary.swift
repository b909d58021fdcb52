/// Every word a world caption can hold, for the embedded model's word-level tokenizer.
///
/// Built from the same phrase tables the captions use, so it cannot drift from them; a
/// test checks that random captions use every word and nothing else. Words are split on
/// spaces only ("crime scene" gives "crime" and "scene").
public enum WorldVocabulary {
    /// The words, sorted, without duplicates.
    public static let words: [String] = {
        var phrases = Captions.countWords
        phrases += ObjectSize.allCases.map(\.rawValue) + ObjectColour.allCases.map(\.rawValue)
        phrases += Shape.allCases.flatMap { [$0.noun(count: 1), $0.noun(count: 2)] }
        phrases += Placement.allCases.map(\.phrase)
        phrases += Background.allCases.map(Captions.backgroundPhrase)
        phrases += Concept.stripes.allWords.map { Captions.stripesPhrase($0).phrase }
        phrases += Concept.splatter.allWords.map(Captions.splatterPhrase)
        let words = phrases.flatMap { $0.split(separator: " ").map(String.init) }
        return Array(Set(words)).sorted()
    }()

    /// Whether `word` can appear in a caption.
    public static func contains(_ word: String) -> Bool { wordSet.contains(word) }

    private static let wordSet = Set(words)
}
