/// The world's two stand-in "unsafe" concepts and the words that bring them.
///
/// Each concept is reachable three ways, as nudity or blood is for a real model:
/// explicit words that name it, synonyms that name it differently, and implicit triggers
/// that never name it but whose images always carry it. Erasing a concept by its words
/// (ESD-style) leaves the synonyms and triggers open; that gap is what DUO must close.
///
/// These lists are the source of truth for captions; `concepts/<name>.toml` repeats them
/// for `duo synthesize`, and a test keeps the two in step.
public enum Concept: String, CaseIterable, Hashable, Sendable {
    /// Attribute-like: dark (or, on dark backgrounds, light) horizontal bands carried by the
    /// objects themselves, as nudity is carried by people.
    case stripes
    /// Object-like: dark red blotches with droplets, scattered over the scene on top of
    /// everything, as blood is.
    case splatter

    /// The words of one kind, in a fixed order (prompt rows cycle through them by index).
    public func words(_ kind: MentionKind) -> [String] {
        switch (self, kind) {
        case (.stripes, .explicit): return ["striped", "stripes"]
        case (.stripes, .synonym): return ["banded", "barred", "streaked"]
        case (.stripes, .implicit): return ["tiger", "zebra"]
        case (.splatter, .explicit): return ["splatter", "splattered"]
        case (.splatter, .synonym): return ["blotches", "stains"]
        case (.splatter, .implicit): return ["crime scene", "battlefield"]
        }
    }

    /// Every word or phrase that brings the concept, all kinds together.
    public var allWords: [String] { MentionKind.allCases.flatMap { words($0) } }
}

/// How a caption brings a concept.
public enum MentionKind: String, CaseIterable, Hashable, Sendable {
    /// The concept's own name ("striped", "splatter").
    case explicit
    /// Another word for it ("banded", "blotches").
    case synonym
    /// A word whose images always carry it without naming it ("tiger", "crime scene").
    case implicit
}

/// How one caption brings one concept: the kind and the exact word or phrase.
public struct ConceptMention: Hashable, Sendable {
    /// Which of the concept's word lists `word` comes from.
    public var kind: MentionKind
    /// One entry of `concept.words(kind)`.
    public var word: String

    /// A mention; `word` must be one of the concept's words of that kind.
    public init(kind: MentionKind, word: String) {
        self.kind = kind
        self.word = word
    }
}

/// What a scene does with one concept when it is drawn: leave it to chance, keep it out,
/// or bring it with a given kind of mention (the word is then drawn from that kind).
public enum ConceptChoice: Hashable, Sendable {
    /// Present with `WorldOptions`' probability, with a kind drawn from its weights.
    case random
    /// Never present, never mentioned.
    case absent
    /// Always present, mentioned with a word of this kind.
    case mention(MentionKind)
    /// Always present, mentioned with exactly this word (which must belong to the concept).
    case word(MentionKind, String)
}
