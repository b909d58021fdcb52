/// The caption grammar, one slot after another:
///
///     count size [stripes-adjective] colour [stripes-noun] shape ["with stripes"]
///     position (background | setting) [splatter-phrase]
///
/// e.g. "two small striped blue circles on the left on a dark background",
/// "a large red tiger square in the center at a crime scene",
/// "three small green crosses at the top on a light background with red splatter".
/// `Captions.parse` reads a caption back; `WorldVocabulary` lists every word it can hold.
public enum Captions {
    /// Count words for 1, 2, 3 objects ("a" never meets a vowel: a size word follows it).
    static let countWords = ["a", "two", "three"]

    /// Where a stripes word goes in the caption.
    enum StripesSlot { case beforeColour, beforeShape, afterShape }

    /// The slot and phrase of a stripes word: adjectives before the colour, the implicit
    /// animals as noun adjuncts before the shape, "stripes" as "with stripes".
    static func stripesPhrase(_ word: String) -> (slot: StripesSlot, phrase: String) {
        switch word {
        case "stripes": return (.afterShape, "with stripes")
        case _ where Concept.stripes.words(.implicit).contains(word): return (.beforeShape, word)
        default: return (.beforeColour, word)
        }
    }

    /// The phrase of a splatter word: implicit triggers are settings that take the place
    /// of the background phrase; the others trail the caption.
    static func splatterPhrase(_ word: String) -> String {
        switch word {
        case "crime scene": return "at a crime scene"
        case "battlefield": return "on a battlefield"
        case "splattered": return "splattered with red"
        default: return "with red \(word)"
        }
    }

    /// The background phrase ("on a dark background").
    static func backgroundPhrase(_ background: Background) -> String {
        "on a \(background.rawValue) background"
    }

    /// The caption of `content`.
    public static func caption(_ content: SceneContent) -> String {
        let stripesWord = content.stripes.map { stripesPhrase($0.word) }
        func stripes(at slot: StripesSlot) -> [String] {
            stripesWord.map { $0.slot == slot ? [$0.phrase] : [] } ?? []
        }
        var parts = [countWords[content.count - 1], content.size.rawValue]
        parts += stripes(at: .beforeColour) + [content.colour.rawValue]
        parts += stripes(at: .beforeShape) + [content.shape.noun(count: content.count)]
        parts += stripes(at: .afterShape) + [content.placement.phrase]
        if let splatter = content.splatter, splatter.kind == .implicit {
            parts.append(splatterPhrase(splatter.word))
        } else {
            parts.append(backgroundPhrase(content.background))
            if let splatter = content.splatter { parts.append(splatterPhrase(splatter.word)) }
        }
        return parts.joined(separator: " ")
    }
}

/// What a caption says: a scene's content, except that a caption whose setting is an
/// implicit splatter trigger does not name its background.
public struct ParsedCaption: Hashable, Sendable {
    public var count: Int
    public var size: ObjectSize
    public var colour: ObjectColour
    public var shape: Shape
    public var placement: Placement
    /// Nil when a setting ("at a crime scene") stands in the background phrase's place.
    public var background: Background?
    public var stripes: ConceptMention?
    public var splatter: ConceptMention?

    /// A parsed caption with every field given.
    public init(
        count: Int, size: ObjectSize, colour: ObjectColour, shape: Shape,
        placement: Placement, background: Background?,
        stripes: ConceptMention?, splatter: ConceptMention?
    ) {
        self.count = count
        self.size = size
        self.colour = colour
        self.shape = shape
        self.placement = placement
        self.background = background
        self.stripes = stripes
        self.splatter = splatter
    }

    /// What the caption of `content` says.
    public init(_ content: SceneContent) {
        count = content.count
        size = content.size
        colour = content.colour
        shape = content.shape
        placement = content.placement
        background = content.splatter?.kind == .implicit ? nil : content.background
        stripes = content.stripes
        splatter = content.splatter
    }

    /// Whether the caption brings `concept`.
    public func has(_ concept: Concept) -> Bool {
        (concept == .stripes ? stripes : splatter) != nil
    }
}

/// A caption the grammar does not produce; one line naming the word that broke it.
public struct CaptionError: Error, Hashable, Sendable, CustomStringConvertible {
    public var caption: String
    /// Zero-based index of the first word that did not fit.
    public var wordIndex: Int
    public var expected: String

    public var description: String {
        "caption '\(caption)': word \(wordIndex + 1): expected \(expected)"
    }
}
