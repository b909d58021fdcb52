import Diffusion
import Foundation
import Tensor

/// UnlearnDiffAtk (Zhang et al., ECCV 2024): a white-box attack on an unlearned model.
/// K prefix tokens, relaxed to a softmax over the vocabulary, are optimized with Adam so
/// that the UNLEARNED model, prompted with prefix + prompt, denoises an image that shows
/// the concept well: the diffusion loss on that image is the attack's objective (the
/// model's own "classifier"). The prefix is then made discrete (argmax per position), so
/// the result is a plain prompt any evaluation can use.
public struct UnlearnDiffAttack {
    public struct Settings: Hashable, Sendable {
        /// Prefix tokens (UnlearnDiffAtk's 5).
        public var prefixLength = 5
        /// Optimization steps (UnlearnDiffAtk's 40).
        public var steps = 40
        /// Adam's learning rate on the prefix logits.
        public var learningRate: Float = 0.1
        /// Noise draws (timestep and ε) averaged per step.
        public var draws = 4
        public var seed: UInt64 = 0

        public init() {}
    }

    public let model: StableDiffusion
    public let settings: Settings
    /// Token ids the prefix may use.
    public let vocabulary: [Int]
    let diffusionLoss: AttackObjective
    /// The vocabulary's token embeddings: [V, hidden].
    let vocabularyEmbeddings: Tensor

    /// `model` carries the adapter under attack (merged into its UNet: `LoRASet.merge`);
    /// `forbidden` words (the concept's words and synonyms) never appear in a prefix.
    public init(model: StableDiffusion, forbidden: [String], settings: Settings) throws {
        // bos, the prefix, at least one token of the prompt and eos must fit the text encoder.
        guard settings.prefixLength <= model.tokenizer.maxLength - 3 else {
            throw AttackError(
                "a prefix of \(settings.prefixLength) tokens leaves no room for the prompt "
                    + "(the text encoder reads \(model.tokenizer.maxLength) tokens with bos and eos; at most \(model.tokenizer.maxLength - 3))"
            )
        }
        self.model = model
        self.settings = settings
        let words = AttackVocabulary.tokenIDs(model.tokenizer, forbidden: forbidden)
        guard words.count >= 2 else {
            throw AttackError("the tokenizer leaves fewer than 2 words for a prefix")
        }
        vocabulary = words
        diffusionLoss = try AttackObjective(model: model)
        vocabularyEmbeddings = GradMode.withNoGrad {
            embedding(words, weight: model.textEncoder.tokenEmbedding)
        }
    }

    /// A prompt that makes the attacked model draw what `image` ([1, C, h, w] in model
    /// space: latents for a latent model) shows: the found prefix, a space, `prompt`.
    /// `progress(step, loss)` after each step.
    public func attack(
        image: Tensor, prompt: String, index: UInt64, progress: (Int, Float) -> Void = { _, _ in }
    ) -> (prompt: String, loss: Float) {
        let key = RandomKey(seed: settings.seed).fold(in: 0x554E_4C44).fold(in: index)  // "UNLD"
        let k = settings.prefixLength
        let logits = Tensor.zeros([k, vocabulary.count], requiresGrad: true)
        let optimizer = AdamW(parameters: [logits], options: .init(weightDecay: 0))
        let (before, after) = tokenEmbeddings(prompt)
        var loss: Float = .nan
        for step in 0..<settings.steps {
            optimizer.zeroGrad()
            let prefix = matmul(softmax(logits), vocabularyEmbeddings).reshaped([
                1, k, vocabularyEmbeddings.shape[1],
            ])
            let context = model.textEncoder(
                tokenEmbeddings: concat([before, prefix, after], axis: 1))
            loss = backwardDenoisingLoss(
                image: image, context: context, key: key.fold(in: UInt64(step)))
            optimizer.update(learningRate: settings.learningRate)
            progress(step + 1, loss)
        }
        let chosen = (0..<k).map { row in
            let values = logits.scalars[(row * vocabulary.count)..<((row + 1) * vocabulary.count)]
            return vocabulary[
                values.indices.max { values[$0] < values[$1] }! - row * vocabulary.count]
        }
        let words = chosen.map { model.tokenizer.decode([$0]).trimmingCharacters(in: .whitespaces) }
        return ((words.filter { !$0.isEmpty } + [prompt]).joined(separator: " "), loss)
    }

    /// The embeddings around the prefix: bos before it; the prompt's tokens, eos and
    /// padding after it (the prompt cut so that the whole fits the encoder's length).
    func tokenEmbeddings(_ prompt: String) -> (before: Tensor, after: Tensor) {
        let tokenizer = model.tokenizer
        let room = tokenizer.maxLength - 2 - settings.prefixLength
        let ids = Array(tokenizer.tokenIDs(prompt).prefix(max(0, room)))
        var rest = ids + [tokenizer.eosTokenID]
        rest += Array(
            repeating: tokenizer.padTokenID,
            count: tokenizer.maxLength - 1 - settings.prefixLength - rest.count)
        let table = model.textEncoder.tokenEmbedding
        let hidden = table.shape[1]
        return GradMode.withNoGrad {
            (
                embedding([tokenizer.bosTokenID], weight: table).reshaped([1, 1, hidden]),
                embedding(rest, weight: table).reshaped([1, rest.count, hidden])
            )
        }
    }

    /// Mean diffusion loss of the attacked UNet on `image` over `draws` (t, ε) pairs,
    /// back-propagated into what `context` [1, S, D] was made from; returns its value.
    func backwardDenoisingLoss(image: Tensor, context: Tensor, key: RandomKey) -> Float {
        diffusionLoss.backward(
            concat(Array(repeating: image, count: settings.draws), axis: 0), context: context,
            key: key)
    }
}
