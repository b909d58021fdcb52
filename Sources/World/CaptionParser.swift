extension Captions {
    /// Reads a caption of the world's grammar back into what it says. Evaluation uses it
    /// to know what a prompt asks for (shape, colour, concepts) without keeping its scene.
    public static func parse(_ caption: String) throws -> ParsedCaption {
        var reader = PhraseReader(caption)
        let count = try reader.expect("a count word", countWords.enumerated().map { ($1, $0 + 1) })
        let size = try reader.expect("a size", ObjectSize.allCases.map { ($0.rawValue, $0) })
        var stripes = reader.take(stripesOptions(.beforeColour))
        let colour = try reader.expect("a colour", ObjectColour.allCases.map { ($0.rawValue, $0) })
        if stripes == nil { stripes = reader.take(stripesOptions(.beforeShape)) }
        let shapes = Shape.allCases.map { ($0.noun(count: count), $0) }
        let shape = try reader.expect(count == 1 ? "a shape" : "a plural shape", shapes)
        if stripes == nil { stripes = reader.take(stripesOptions(.afterShape)) }
        let placement = try reader.expect("a position", Placement.allCases.map { ($0.phrase, $0) })
        var background: Background?
        var splatter = reader.take(splatterOptions(implicit: true))
        if splatter == nil {
            let backgrounds = Background.allCases.map { (backgroundPhrase($0), $0) }
            background = try reader.expect("a background or setting", backgrounds)
            splatter = reader.take(splatterOptions(implicit: false))
        }
        try reader.expectEnd()
        return ParsedCaption(
            count: count, size: size, colour: colour, shape: shape, placement: placement,
            background: background, stripes: stripes, splatter: splatter)
    }

    /// The stripes phrases that go in `slot`, with the mention each stands for.
    private static func stripesOptions(_ slot: StripesSlot) -> [(String, ConceptMention)] {
        MentionKind.allCases.flatMap { kind in
            Concept.stripes.words(kind).compactMap { word in
                let (wordSlot, phrase) = stripesPhrase(word)
                return wordSlot == slot ? (phrase, ConceptMention(kind: kind, word: word)) : nil
            }
        }
    }

    /// The splatter phrases that are settings (`implicit`) or trailing phrases.
    private static func splatterOptions(implicit: Bool) -> [(String, ConceptMention)] {
        MentionKind.allCases.filter { ($0 == .implicit) == implicit }.flatMap { kind in
            Concept.splatter.words(kind).map {
                (splatterPhrase($0), ConceptMention(kind: kind, word: $0))
            }
        }
    }
}

/// Walks a caption word by word, matching whole phrases.
private struct PhraseReader {
    let caption: String
    let words: [Substring]
    var index = 0

    init(_ caption: String) {
        self.caption = caption
        words = caption.split(separator: " ")
    }

    /// The value of the first option whose phrase comes next, consuming it; nil if none.
    mutating func take<T>(_ options: [(String, T)]) -> T? {
        for (phrase, value) in options {
            let phraseWords = phrase.split(separator: " ")
            let end = index + phraseWords.count
            if end <= words.count && Array(words[index..<end]) == phraseWords {
                index = end
                return value
            }
        }
        return nil
    }

    /// Like `take`, but a caption without any of the phrases here is an error.
    mutating func expect<T>(_ what: String, _ options: [(String, T)]) throws -> T {
        guard let value = take(options) else {
            throw CaptionError(caption: caption, wordIndex: index, expected: what)
        }
        return value
    }

    func expectEnd() throws {
        if index < words.count {
            throw CaptionError(caption: caption, wordIndex: index, expected: "the end")
        }
    }
}
