import Foundation

/// CLIP's text normalization as tokenizers applies it: `Sequence[NFC, Replace(\s+ → " "),
/// Lowercase]`.
///
/// The whitespace replacement is left out: pre-tokenization drops every whitespace run
/// anyway, and no added token contains whitespace, so collapsing runs cannot change the ids.
enum CLIPNormalizer {
    /// The NFC form of `text`, lower-cased one scalar at a time.
    static func normalize(_ text: ArraySlice<Unicode.Scalar>) -> [Unicode.Scalar] {
        var result: [Unicode.Scalar] = []
        result.reserveCapacity(text.count)
        for scalar in composed(text) {
            appendLowercase(scalar, to: &result)
        }
        return result
    }

    /// Unicode NFC, through Foundation. Scalars below U+0300 are all NFC-stable and never
    /// compose with what follows (every combining mark, Hangul jamo and singleton lies above),
    /// so text made only of them, such as ASCII prompts, skips the conversion.
    private static func composed(_ text: ArraySlice<Unicode.Scalar>) -> [Unicode.Scalar] {
        guard text.contains(where: { $0.value >= 0x300 }) else { return Array(text) }
        var view = String.UnicodeScalarView()
        view.append(contentsOf: text)
        return Array(String(view).precomposedStringWithCanonicalMapping.unicodeScalars)
    }

    /// Rust's `char::to_lowercase`, which tokenizers' Lowercase applies to each character:
    /// the full (SpecialCasing) mapping without context, so 'İ' becomes "i̇" and every 'Σ'
    /// becomes 'σ', final or not.
    private static func appendLowercase(_ scalar: Unicode.Scalar, to result: inout [Unicode.Scalar])
    {
        if scalar.isASCII {
            let value = scalar.value
            let isUpper = value >= 0x41 && value <= 0x5A
            result.append(isUpper ? Unicode.Scalar(value + 0x20)! : scalar)
        } else if scalar.properties.changesWhenLowercased {
            result.append(contentsOf: scalar.properties.lowercaseMapping.unicodeScalars)
        } else {
            result.append(scalar)
        }
    }
}
