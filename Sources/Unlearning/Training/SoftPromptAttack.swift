import Diffusion
import Tensor

/// AdvUnlearn's attack inside training (Zhang et al. 2024; OPTML-Group/AdvUnlearn 9d23124,
/// `train-scripts/utils/attack_util.py`, `soft_prompt_attack`): a prefix of k continuous
/// word embeddings before the prompt, fed to the text encoder as embeddings and never
/// projected back to tokens, moved by Adam so that the model being unlearned, so prompted,
/// denoises an image of the concept. Each round starts from the last round's prefix
/// (`attack_init` latest) with a fresh Adam (l.33, 161–166), one random timestep and noise
/// per step (l.175–180); the reference never zeroes the prefix's gradient inside a round, so
/// each step moves it by the sum of the round's gradients so far, as here.
///
/// The objective is the attacked model's diffusion loss on the unsafe image of a pair
/// (`AttackObjective`, UnlearnDiffAtk's), where the reference matches the original model's
/// prediction for the concept prompt on a latent it samples: a DUO pair's unsafe image is
/// the original model's draw for its prompt, so its noise is that target without the
/// sampling and the extra pass.
public struct SoftPromptAttack {
    public struct Settings: Hashable, Sendable {
        /// Prefix embeddings (`adv_prompt_num`, AdvUnlearn.py:254: 1).
        public var tokens = 1
        /// Adam steps per round (`attack_step`, AdvUnlearn.py:258: 30).
        public var steps = 30
        /// Adam's rate (`attack_lr`, AdvUnlearn.py:260: 1e-3).
        public var learningRate: Float = 1e-3

        public init() {}
    }

    public let objective: AttackObjective
    public let model: StableDiffusion
    public let settings: Settings

    public init(model: StableDiffusion, settings: Settings) throws {
        objective = try AttackObjective(model: model)
        self.model = model
        self.settings = settings
    }

    /// A first prefix [1, k, hidden]: the embeddings of k tokens drawn from the whole
    /// vocabulary (`init_adv`, l.5–19).
    public func initialPrefix(key: RandomKey) -> Tensor {
        let table = model.textEncoder.tokenEmbedding
        let ids = key.uniform(count: settings.tokens).map {
            min(Int($0 * Float(table.shape[0])), table.shape[0] - 1)
        }
        return GradMode.withNoGrad {
            embedding(ids, weight: table).reshaped([1, settings.tokens, table.shape[1]])
        }
    }

    /// One round: `settings.steps` Adam steps on a copy of `prefix` [1, k, hidden] against
    /// `image` [1, C, h, w] (model space) prompted with `prefix` + `prompt`, the trained
    /// parameters `frozen` left without gradients. Returns the moved prefix and the mean loss.
    public func round(
        prefix start: Tensor, prompt: String, image: Tensor, frozen: [Tensor], key: RandomKey
    ) -> (prefix: Tensor, loss: Float) {
        let prefix = Tensor(start.scalars, shape: start.shape, requiresGrad: true)
        let layout = PrefixedPrompt(
            prompt, prefixLength: settings.tokens, tokenizer: model.tokenizer,
            textEncoder: model.textEncoder)
        let adam = AdamW(parameters: [prefix], options: .init(weightDecay: 0))
        let wereTrained = frozen.map(\.requiresGrad)
        for parameter in frozen { parameter.requiresGrad = false }
        defer { for (p, was) in zip(frozen, wereTrained) { p.requiresGrad = was } }
        let steps = objective.schedule.numTrainTimesteps
        var total: Float = 0
        for i in 0..<settings.steps {
            let stepKey = key.fold(in: UInt64(i))
            let t = min(Int(stepKey.uniform(count: 1)[0] * Float(steps)), steps - 1)
            let noise = Tensor.randn(image.shape, key: stepKey.fold(in: 1))
            let context = layout.context(prefix: prefix, textEncoder: model.textEncoder)
            total += objective.backward(image, context: context, noise: noise, timesteps: [t])
            // prefix.grad holds the sum of this round's gradients: the reference's.
            adam.update(learningRate: settings.learningRate)
        }
        return (Tensor(prefix.scalars, shape: prefix.shape), total / Float(max(settings.steps, 1)))
    }

    /// The conditioning [1, length, hidden] of `prompt` after `prefix`: outside the tape, or
    /// `onTape` (for training adapters in the text encoder; the prefix stays a constant).
    public func context(prefix: Tensor, prompt: String, onTape: Bool = false) -> Tensor {
        let layout = PrefixedPrompt(
            prompt, prefixLength: settings.tokens, tokenizer: model.tokenizer,
            textEncoder: model.textEncoder)
        guard onTape else {
            return GradMode.withNoGrad {
                layout.context(prefix: prefix, textEncoder: model.textEncoder)
            }
        }
        return layout.context(prefix: prefix, textEncoder: model.textEncoder)
    }
}
