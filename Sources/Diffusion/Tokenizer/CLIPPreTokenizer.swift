/// CLIP's pre-tokenization: normalized text into the words that BPE encodes one by one.
///
/// transformers' CLIPTokenizer splits with the pattern
///
///     <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
///
/// keeping the matches and dropping the rest (whitespace), then applies ByteLevel with GPT-2's
/// pattern to each match. That second split changes only the two special-token literals:
/// a contraction, a letter run, a digit or a run of other characters is already one GPT-2
/// match, while `<|endoftext|>` becomes `<|`, `endoftext`, `|>`. Both are written out here by
/// hand over Unicode general categories (the regex engine, Oniguruma, uses the same classes).
enum CLIPPreTokenizer {
    private enum ScalarClass {
        case whitespace, letter, number, other
    }

    private static let specialLiterals: [[Unicode.Scalar]] = [
        Array("<|startoftext|>".unicodeScalars), Array("<|endoftext|>".unicodeScalars),
    ]
    /// The pattern's contractions after the apostrophe, in the pattern's order.
    private static let contractions: [[Unicode.Scalar]] = ["s", "t", "re", "ve", "m", "ll", "d"]
        .map { Array($0.unicodeScalars) }

    /// Calls `body` with each word of `text`, in order.
    static func split(
        _ text: [Unicode.Scalar], _ body: (ArraySlice<Unicode.Scalar>) -> Void
    ) {
        var start = 0
        while start < text.count {
            let kind = scalarClass(text[start])
            if kind == .whitespace {
                start += 1
                continue
            }
            if let literal = specialLiterals.first(where: { hasPrefix(text, at: start, $0) }) {
                // ByteLevel's GPT-2 split: "<|", the word, "|>".
                let end = start + literal.count
                body(text[start..<(start + 2)])
                body(text[(start + 2)..<(end - 2)])
                body(text[(end - 2)..<end])
                start = end
                continue
            }
            let end = matchEnd(text, from: start, kind: kind)
            body(text[start..<end])
            start = end
        }
    }

    /// Where the pattern's match starting at `start` (not whitespace, not a literal) ends.
    private static func matchEnd(_ text: [Unicode.Scalar], from start: Int, kind: ScalarClass)
        -> Int
    {
        if text[start] == "'" {
            for contraction in contractions where hasPrefix(text, at: start + 1, contraction) {
                return start + 1 + contraction.count
            }
        }
        switch kind {
        case .number:
            return start + 1
        case .letter, .other:
            // A maximal run of the same class: the pattern's `[\p{L}]+` or
            // `[^\s\p{L}\p{N}]+`, both greedy.
            var end = start + 1
            while end < text.count, scalarClass(text[end]) == kind { end += 1 }
            return end
        case .whitespace:
            return start + 1
        }
    }

    private static func hasPrefix(
        _ text: [Unicode.Scalar], at start: Int, _ prefix: [Unicode.Scalar]
    ) -> Bool {
        guard start + prefix.count <= text.count else { return false }
        for (offset, scalar) in prefix.enumerated() where text[start + offset] != scalar {
            return false
        }
        return true
    }

    /// `\s` is Unicode White_Space, `\p{L}` the categories L*, `\p{N}` the categories N*.
    private static func scalarClass(_ scalar: Unicode.Scalar) -> ScalarClass {
        if scalar.isASCII {
            let byte = UInt8(scalar.value)
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"):
                return .letter
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return .number
            case 0x09...0x0D, 0x20: return .whitespace
            default: return .other
            }
        }
        let properties = scalar.properties
        if properties.isWhitespace { return .whitespace }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return .letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return .number
        default:
            return .other
        }
    }
}
