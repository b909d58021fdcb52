import Tensor

/// A prompt's token embeddings with room for k learned embeddings right after bos, the
/// layout of the prefix attacks (UnlearnDiffAtk's `construct_embd`, AdvUnlearn's `prefix_k`:
/// bos, the prefix, the prompt's tokens, eos and padding). The prompt is cut so that the
/// whole fits the text encoder's length.
public struct PrefixedPrompt {
    /// bos: [1, 1, hidden].
    public let before: Tensor
    /// The prompt's tokens, eos and padding: [1, length − 1 − k, hidden].
    public let after: Tensor
    /// The prompt's tokens (cut to fit).
    public let ids: [Int]
    public let prefixLength: Int

    /// The embeddings around a prefix of `prefixLength` tokens (1 to maxLength − 3: bos, at
    /// least one token of the prompt and eos must fit), outside the tape.
    public init(
        _ prompt: String, prefixLength k: Int, tokenizer: CLIPTokenizer, textEncoder: CLIPTextModel
    ) {
        precondition(k >= 1 && k <= tokenizer.maxLength - 3, "a prefix of \(k) tokens")
        let ids = Array(tokenizer.tokenIDs(prompt).prefix(tokenizer.maxLength - 2 - k))
        var rest = ids + [tokenizer.eosTokenID]
        rest += Array(
            repeating: tokenizer.padTokenID, count: tokenizer.maxLength - 1 - k - rest.count)
        let table = textEncoder.tokenEmbedding
        let hidden = table.shape[1]
        (before, after) = GradMode.withNoGrad {
            (
                embedding([tokenizer.bosTokenID], weight: table).reshaped([1, 1, hidden]),
                embedding(rest, weight: table).reshaped([1, rest.count, hidden])
            )
        }
        self.ids = ids
        prefixLength = k
    }

    /// The text encoder's last hidden states [1, length, hidden] with `prefix` [1, k, hidden]
    /// in its place; differentiable in `prefix`.
    public func context(prefix: Tensor, textEncoder: CLIPTextModel) -> Tensor {
        precondition(
            prefix.rank == 3 && prefix.shape[0] == 1 && prefix.shape[1] == prefixLength,
            "prefix embeddings \(prefix.shape), expected [1, \(prefixLength), hidden]")
        return textEncoder(tokenEmbeddings: concat([before, prefix, after], axis: 1))
    }
}
