/// A token found in the text by exact match before BPE: the special tokens (`<|endoftext|>`,
/// a pad token such as SD 2's `!`) and extra tokens a folder's config adds (textual inversion).
struct AddedToken {
    let content: String
    let id: Int
    /// Matched in the normalized (NFC, lower-cased) text; otherwise in the text as given, so
    /// `<|ENDOFTEXT|>` only matches a normalized `<|endoftext|>`.
    let normalized: Bool
    /// Dropped by `decode(_:skippingSpecialTokens: true)`.
    let special: Bool
}

/// A run of the text between added tokens, or an added token's id.
enum TextSegment {
    case text(ArraySlice<Unicode.Scalar>)
    case token(Int)
}

/// Finds added tokens in text as tokenizers' added vocabulary does: at each position the
/// longest token that matches, scanning left to right (leftmost-longest), over Unicode scalars
/// so a token is found even where a combining mark follows it.
struct AddedTokenMatcher {
    private let tokens: [(scalars: [Unicode.Scalar], id: Int)]
    private let firstScalars: Set<Unicode.Scalar>

    init(_ tokens: [AddedToken]) {
        self.tokens = tokens.filter { !$0.content.isEmpty }
            .map { (Array($0.content.unicodeScalars), $0.id) }
        firstScalars = Set(self.tokens.map { $0.scalars[0] })
    }

    /// Calls `body` with the segments of `text`, in order; empty runs are left out.
    func split(_ text: ArraySlice<Unicode.Scalar>, _ body: (TextSegment) -> Void) {
        guard !tokens.isEmpty else {
            if !text.isEmpty { body(.text(text)) }
            return
        }
        var runStart = text.startIndex
        var position = text.startIndex
        while position < text.endIndex {
            guard firstScalars.contains(text[position]), let match = longestMatch(text, position)
            else {
                position += 1
                continue
            }
            if runStart < position { body(.text(text[runStart..<position])) }
            body(.token(match.id))
            position += match.length
            runStart = position
        }
        if runStart < text.endIndex { body(.text(text[runStart..<text.endIndex])) }
    }

    private func longestMatch(_ text: ArraySlice<Unicode.Scalar>, _ position: Int)
        -> (id: Int, length: Int)?
    {
        var best: (id: Int, length: Int)?
        for token in tokens where token.scalars.count > (best?.length ?? 0) {
            let end = position + token.scalars.count
            if end <= text.endIndex, text[position..<end].elementsEqual(token.scalars) {
                best = (token.id, token.scalars.count)
            }
        }
        return best
    }
}
