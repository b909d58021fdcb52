import Diffusion
import Foundation
import Tensor
import Unlearning

/// UnlearnDiffAtk (Zhang et al., ECCV 2024) as its reference runs it
/// (OPTML-Group/Diffusion-MU-Attack, `src/attackers/text_grad_.py`, `src/tasks/classifier_.py`,
/// `configs/nudity/text_grad_esd_nudity_classifier.json`; docs/reference-settings.md): a
/// white-box attack on an unlearned model. K prefix tokens, each a probability vector over
/// the vocabulary (`PrefixSimplex`), are optimized so that the UNLEARNED model, prompted with
/// prefix + prompt, denoises the ORIGINAL model's image of the prompt well (its diffusion
/// loss is the model's own "classifier"). The timesteps are visited in order, so many
/// iterations at each; after each timestep's iterations the most likely prefix is read off
/// and drawn at the prompt's seed, and the attack stops at the first image the detector
/// flags (`text_grad_.py` l.207–233).
public struct UnlearnDiffAttack {
    /// The tokens a prefix may use.
    public enum Vocabulary: String, CaseIterable, Sendable {
        /// Every row of the text encoder's embedding table: the reference's vector spans
        /// `len(tokenizer.get_vocab())` (`text_grad_.py` l.69–70), special tokens and the
        /// concept's own words included.
        case all
        /// Whole words that tokenize back to themselves, without the concept's words and
        /// synonyms (`AttackVocabulary`), as duo's Ring-A-Bell chooses them.
        case words
    }

    public struct Settings: Hashable, Sendable {
        /// Prefix tokens (the config's `k`, 5).
        public var prefixLength = 5
        /// Timesteps visited, in order (`classifier_.py` l.30, 67–70: 50, so 10, 30, …, 990).
        public var timesteps = 50
        /// Attack iterations at each timestep (the config's `iteration`, 40).
        public var iterations = 40
        /// Adam's learning rate and (coupled) weight decay (the config's 0.01 and 0.1).
        public var learningRate: Float = 0.01
        public var weightDecay: Float = 0.1
        public var vocabulary = Vocabulary.all
        /// Seed of the token draws and the noise.
        public var seed: UInt64 = 0

        public init() {}
    }

    /// One prompt to attack and how its images are drawn: the seed and guidance of its
    /// success check (UnlearnDiffAtk's `evaluation_seed`, `evaluation_guidance`).
    public struct Target: Hashable, Sendable {
        public var prompt: String
        public var seed: UInt64
        public var guidance: Float
        public var height: Int?
        public var width: Int?

        public init(prompt: String, seed: UInt64, guidance: Float, height: Int?, width: Int?) {
            self.prompt = prompt
            self.seed = seed
            self.guidance = guidance
            self.height = height
            self.width = width
        }
    }

    /// What an attack on one prompt found.
    public struct Outcome: Hashable, Sendable {
        /// The last prompt checked: the prompt itself when it needed no attack.
        public var prompt: String
        public var success: Bool
        /// Attack iterations run (0: the prompt alone brought the concept back).
        public var iterations: Int
        /// The last timestep attacked, nil with no iterations.
        public var timestep: Int?
        /// The mean loss of that timestep's iterations.
        public var loss: Float?
    }

    public let model: StableDiffusion
    public let settings: Settings
    /// The token id of each entry of a prefix vector.
    public let vocabulary: [Int]
    /// The timesteps in the order they are visited.
    public let timesteps: [Int]
    let objective: AttackObjective
    /// The vocabulary's token embeddings, [V, hidden], outside the tape.
    let vocabularyEmbeddings: Tensor

    /// `model` carries the adapter under attack (merged into its UNet: `LoRASet.merge`);
    /// `forbidden` words (the concept's words and synonyms) are left out of the `words`
    /// vocabulary only.
    public init(model: StableDiffusion, forbidden: [String], settings: Settings) throws {
        let length = model.tokenizer.maxLength
        // bos, the prefix, at least one token of the prompt and eos must fit the text encoder.
        guard settings.prefixLength >= 1, settings.prefixLength <= length - 3 else {
            throw AttackError(
                "a prefix of \(settings.prefixLength) tokens does not fit with a prompt (the text encoder reads \(length) tokens with bos and eos; 1 to \(length - 3))"
            )
        }
        self.model = model
        self.settings = settings
        objective = try AttackObjective(model: model)
        timesteps = try Self.timesteps(
            count: settings.timesteps, trainingSteps: objective.schedule.numTrainTimesteps)
        let table = model.textEncoder.tokenEmbedding.detached()
        switch settings.vocabulary {
        case .all:
            vocabulary = Array(0..<table.shape[0])
            vocabularyEmbeddings = table
        case .words:
            let words = AttackVocabulary.tokenIDs(model.tokenizer, forbidden: forbidden)
            vocabulary = words
            vocabularyEmbeddings = GradMode.withNoGrad { embedding(words, weight: table) }
        }
        guard vocabulary.count >= 2 else {
            throw AttackError("the tokenizer leaves fewer than 2 tokens for a prefix")
        }
    }

    /// `count` timesteps evenly spread over `trainingSteps`, each in the middle of its
    /// stretch: T/n/2, T/n/2 + T/n, … (`classifier_.py` l.67–70: 10, 30, …, 990).
    public static func timesteps(count: Int, trainingSteps: Int) throws -> [Int] {
        guard count >= 1, count <= trainingSteps else {
            throw AttackError(
                "\(count) timesteps: the model's schedule has \(trainingSteps); give 1 to \(trainingSteps)"
            )
        }
        let stride = trainingSteps / count
        return (0..<count).map { stride / 2 + $0 * stride }
    }

    /// Attacks `target` with `image` ([1, C, h, w] in model space: the original model's
    /// image of the prompt). `succeeds(prompt)` draws and judges a prompt at the target's
    /// seed; it is asked first of the prompt alone, then after each timestep's iterations.
    /// `progress(iterations done, loss)` after each iteration.
    public func attack(
        _ target: Target, image: Tensor, index: UInt64, succeeds: (String) throws -> Bool,
        progress: (Int, Float) -> Void = { _, _ in }
    ) rethrows -> Outcome {
        if try succeeds(target.prompt) {
            return Outcome(prompt: target.prompt, success: true, iterations: 0)
        }
        let key = RandomKey(seed: settings.seed).fold(in: 0x554E_4C44).fold(in: index)  // "UNLD"
        let simplex = PrefixSimplex(positions: settings.prefixLength, size: vocabulary.count)
        let prompt = promptEmbeddings(target.prompt)
        var outcome = Outcome(prompt: target.prompt, success: false, iterations: 0)
        for (j, t) in timesteps.enumerated() {
            var total: Float = 0
            for i in 0..<settings.iterations {
                let drawKey = key.fold(in: UInt64(j)).fold(in: UInt64(i))
                let loss = step(
                    simplex, draws: simplex.draw(key: drawKey.fold(in: 1)), image: image,
                    noise: Tensor.randn(image.shape, key: drawKey.fold(in: 2)), timestep: t,
                    prompt: prompt)
                total += loss
                outcome.iterations += 1
                progress(outcome.iterations, loss)
            }
            outcome.prompt = text(prefix: simplex.mostLikely, promptIDs: prompt.ids)
            outcome.timestep = t
            outcome.loss = total / Float(settings.iterations)
            if try succeeds(outcome.prompt) {
                outcome.success = true
                return outcome
            }
        }
        return outcome
    }

    /// One attack iteration (`text_grad_.py` l.210–220): the prefix is `draws`' one-hot
    /// rows, the loss the attacked UNet's squared error on `image` noised with `noise` at
    /// `timestep`; its gradient moves `simplex`. Returns the loss.
    func step(
        _ simplex: PrefixSimplex, draws: [Int], image: Tensor, noise: Tensor, timestep: Int,
        prompt: PrefixedPrompt
    ) -> Float {
        let (loss, gradient) = lossAndGradient(
            simplex.oneHot(draws), image: image, noise: noise, timestep: timestep, prompt: prompt)
        simplex.update(
            oneHotGradient: gradient, learningRate: settings.learningRate,
            weightDecay: settings.weightDecay)
        return loss
    }

    /// The attacked UNet's squared error on `image` noised with `noise` at `timestep`, with
    /// the prefix made of `oneHot`'s rows [k, V] (`classifier_.py` l.76–87), and its
    /// gradient with respect to those rows.
    func lossAndGradient(
        _ oneHot: Tensor, image: Tensor, noise: Tensor, timestep: Int, prompt: PrefixedPrompt
    ) -> (loss: Float, gradient: Tensor) {
        let rows = oneHot.detached()
        rows.requiresGrad = true
        let hidden = vocabularyEmbeddings.shape[1]
        let prefix = matmul(rows, vocabularyEmbeddings).reshaped([1, rows.shape[0], hidden])
        let context = prompt.context(prefix: prefix, textEncoder: model.textEncoder)
        let loss = objective.loss(image, context: context, noise: noise, timesteps: [timestep])
        loss.backward()
        return (loss.item, rows.grad!)
    }

    /// bos, room for the prefix, then the prompt's tokens, eos and padding.
    func promptEmbeddings(_ prompt: String) -> PrefixedPrompt {
        PrefixedPrompt(
            prompt, prefixLength: settings.prefixLength, tokenizer: model.tokenizer,
            textEncoder: model.textEncoder)
    }

    /// The prompt a prefix makes: its tokens (eos left out) and the prompt's, decoded as
    /// the reference writes it (l.222–226), runs of blanks made one space (the tokenizer
    /// reads them so anyway; a line break would not survive a prompt file).
    func text(prefix: [Int], promptIDs: [Int]) -> String {
        let tokens = prefix.map { vocabulary[$0] }.filter { $0 != model.tokenizer.eosTokenID }
        return model.tokenizer.decode(tokens + promptIDs)
            .split(whereSeparator: { $0.isWhitespace }).joined(separator: " ")
    }
}
