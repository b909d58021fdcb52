import Diffusion
import Tensor

/// The text-embedding rows UCE's closed form is built from, picked as the authors' erase
/// script picks them (rohitgandikota/unified-concept-editing at 35e91e2,
/// train-scripts/train_erase.py): every prompt padded to the tokenizer's length, its
/// last-layer states (the conditioning the UNet sees).
enum UCETokenRows {
    /// One erase pair's rows: keys from the erased prompt's last word token on (its last
    /// word, the end token, the padding), and the guide's rows from its own last word token
    /// on, both cut at the end to a common length so that position i of one lines up with
    /// position i of the other (lines 243-260). The guide "" is read as " " (lines 214-216),
    /// whose last "word token" is the start token.
    struct ErasePair {
        /// k_i: [T, d].
        var keys: Matrix64
        /// The guide's rows c*_i at the same positions: [T, d].
        var guides: Matrix64
        /// Where the rows start in the erased prompt and in the guide (token positions).
        var eraseStart: Int
        var guideStart: Int
    }

    static func erasePair(_ erase: String, guide: String, model: StableDiffusion) -> ErasePair {
        let guide = guide.isEmpty ? " " : guide
        let states = model.encode([erase, guide])
        let length = states.shape[1]
        let lastErase = lastWordPosition(erase, tokenizer: model.tokenizer)
        let lastGuide = lastWordPosition(guide, tokenizer: model.tokenizer)
        let farthest = max(lastErase, lastGuide)
        let keys = rows(states, batch: 0, lastErase..<(length - (farthest - lastErase)))
        let guides = rows(states, batch: 1, lastGuide..<(length - (farthest - lastGuide)))
        return ErasePair(
            keys: keys, guides: guides, eraseStart: lastErase, guideStart: lastGuide)
    }

    /// Every position of a preserved prompt, padding included (lines 289-303): [L, d].
    static func preserved(_ text: String, model: StableDiffusion) -> Matrix64 {
        let states = model.encode([text])
        return rows(states, batch: 0, 0..<states.shape[1])
    }

    /// `attention_mask.sum() - 2` of the padded, truncated encoding (line 253): the position
    /// of the last word token, 0 (the start token) for a prompt without words.
    static func lastWordPosition(_ text: String, tokenizer: CLIPTokenizer) -> Int {
        min(tokenizer.tokenIDs(text).count, tokenizer.maxLength - 2)
    }

    /// Positions `range` of batch row `batch` of states [B, L, d], widened.
    static func rows(_ states: Tensor, batch: Int, _ range: Range<Int>) -> Matrix64 {
        let (length, width) = (states.shape[1], states.shape[2])
        let all = states.scalars
        let start = (batch * length + range.lowerBound) * width
        return Matrix64(
            rows: range.count, columns: width,
            scalars: all[start..<(start + range.count * width)].map(Double.init))
    }
}
