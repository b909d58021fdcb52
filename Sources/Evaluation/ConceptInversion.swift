import Diffusion
import Foundation
import Tensor

/// Concept Inversion (Pham et al., ICLR 2024, "Circumventing Concept Erasure Methods for
/// Text-to-Image Generative Models"), the white-box attack DUO's evaluation also runs: a new
/// token's embedding is learned by textual inversion (Gal et al., 2022) against the
/// UNLEARNED model, on images that show the concept. The diffusion loss of the unlearned
/// UNet, prompted with the concept's prompts where the token stands for the concept's
/// words, is minimized over that one embedding vector; the rest of the model is frozen. If
/// the erasure only cut the words' path to the concept, the token finds another one.
public struct ConceptInversion {
    public struct Settings: Hashable, Sendable {
        /// The new token, written into prompts in place of the concept's words.
        public var placeholder = "<concept>"
        /// Optimization steps (textual inversion runs 3000-5000 on SD; on the embedded
        /// model 1000 at 2e-2 is the stronger attack of those measured: docs/experiments/attacks.md).
        public var steps = 1000
        /// Adam's learning rate on the embedding (textual inversion's base rate 5e-3,
        /// scaled up as its scripts scale it with the batch).
        public var learningRate: Float = 2e-2
        /// Images per step.
        public var batchSize = 4
        public var seed: UInt64 = 0

        public init() {}
    }

    public let model: StableDiffusion
    public let settings: Settings
    let diffusionLoss: AttackObjective
    /// Where the learned vector starts: the mean embedding of the words an attacker may use.
    let initialEmbedding: Tensor

    /// `model` carries the adapter under attack (merged into its UNet); `forbidden` words
    /// (the concept's words and synonyms) are left out of the starting point.
    public init(model: StableDiffusion, forbidden: [String], settings: Settings) throws {
        self.model = model
        self.settings = settings
        guard
            model.tokenizer.addingToken(
                settings.placeholder, id: model.textEncoder.tokenEmbedding.shape[0]) != nil
        else {
            throw AttackError(
                "the placeholder \(settings.placeholder) is already a token of the model's tokenizer: choose another"
            )
        }
        diffusionLoss = try AttackObjective(model: model)
        let words = AttackVocabulary.tokenIDs(model.tokenizer, forbidden: forbidden)
        guard !words.isEmpty else {
            throw AttackError("the tokenizer leaves no word to start the embedding from")
        }
        initialEmbedding = GradMode.withNoGrad {
            mean(
                embedding(words, weight: model.textEncoder.tokenEmbedding), axes: [0],
                keepDims: true)  // [1, hidden]
        }
    }

    /// The learned embedding [hidden] for `images` ([N, C, h, w] in model space) and their
    /// `prompts` (each holding the placeholder). `progress(step, loss)` after each step.
    public func learn(
        images: Tensor, prompts: [String], progress: (Int, Float) -> Void = { _, _ in }
    ) throws -> Tensor {
        try MemoryEstimate.check(
            MemoryEstimate.training(model: model, rows: settings.batchSize),
            what: "a batch of \(settings.batchSize) images")
        guard images.shape[0] == prompts.count, !prompts.isEmpty else {
            throw AttackError(
                "concept inversion needs one prompt per image, got \(prompts.count) for \(images.shape[0])"
            )
        }
        let hidden = initialEmbedding.shape[1]
        let vector = Tensor(initialEmbedding.scalars, shape: [1, 1, hidden], requiresGrad: true)
        let optimizer = AdamW(parameters: [vector], options: .init(weightDecay: 0))
        let (fixed, mask) = promptEmbeddings(prompts)
        let length = fixed.shape[1]
        if let bare = prompts.indices.first(where: { i in
            !mask.scalars[(i * length)..<((i + 1) * length)].contains(1)
        }) {
            throw AttackError(
                "the prompt \(prompts[bare].debugDescription) does not hold the placeholder \(settings.placeholder) within the text encoder's \(length) tokens"
            )
        }
        let key = RandomKey(seed: settings.seed).fold(in: 0x4349_4E56)  // "CINV"
        for step in 0..<settings.steps {
            optimizer.zeroGrad()
            let stepKey = key.fold(in: UInt64(step))
            let rows = stepKey.fold(in: 0).uniform(count: settings.batchSize).map {
                min(Int($0 * Float(prompts.count)), prompts.count - 1)
            }
            let loss = backwardObjective(
                vector, images: gather(images, rows), fixed: gather(fixed, rows),
                mask: gather(mask, rows), key: stepKey)
            optimizer.update(learningRate: settings.learningRate)
            progress(step + 1, loss)
        }
        return vector.detached().reshaped([hidden])
    }

    /// The prompts' token embeddings [N, T, hidden] with zeros at the placeholder, and a
    /// mask [N, T, 1] that is 1 where the placeholder stands.
    func promptEmbeddings(_ prompts: [String]) -> (fixed: Tensor, mask: Tensor) {
        let placeholderID = model.textEncoder.tokenEmbedding.shape[0]
        let tokenizer = model.tokenizer.addingToken(settings.placeholder, id: placeholderID)!
        let length = tokenizer.maxLength
        let ids = prompts.map { tokenizer.encode($0, padTo: length) }
        let maskValues = ids.flatMap { $0.map { Float($0 == placeholderID ? 1 : 0) } }
        let hidden = initialEmbedding.shape[1]
        let mask = Tensor(maskValues, shape: [prompts.count, length, 1])
        let keep = Tensor(maskValues.map { 1 - $0 }, shape: [prompts.count, length, 1])
        let fixed = GradMode.withNoGrad {
            embedding(
                ids.flatMap { $0.map { $0 == placeholderID ? tokenizer.padTokenID : $0 } },
                weight: model.textEncoder.tokenEmbedding
            )
            .reshaped([prompts.count, length, hidden]) * keep
        }
        return (fixed, mask)
    }

    /// The diffusion loss of the attacked model on `x0` prompted with the token embeddings
    /// `fixed` [B, T, hidden] holding `vector` [1, 1, hidden] where `mask` [B, T, 1] is 1,
    /// back-propagated into `vector`; returns its value.
    func backwardObjective(
        _ vector: Tensor, images x0: Tensor, fixed: Tensor, mask: Tensor, key: RandomKey
    ) -> Float {
        let context = model.textEncoder(tokenEmbeddings: fixed + mask * vector)
        return diffusionLoss.backward(x0, context: context, key: key)
    }

    /// Rows `rows` of `x` along the batch axis.
    func gather(_ x: Tensor, _ rows: [Int]) -> Tensor {
        concat(rows.map { x.slice(batch: $0) }, axis: 0)
    }

    /// `prompt` with each of `words` (whole words, any case) replaced by the placeholder;
    /// a prompt without any of them gets the placeholder in front.
    public func substitute(_ words: [String], in prompt: String) -> String {
        var replaced = false
        let parts = prompt.split(separator: " ", omittingEmptySubsequences: false).map {
            part -> String in
            let word = part.trimmingCharacters(in: .punctuationCharacters).lowercased()
            guard words.contains(where: { $0.lowercased() == word }) else { return String(part) }
            replaced = true
            return part.replacingOccurrences(
                of: word, with: settings.placeholder, options: .caseInsensitive)
        }
        return replaced ? parts.joined(separator: " ") : settings.placeholder + " " + prompt
    }
}
