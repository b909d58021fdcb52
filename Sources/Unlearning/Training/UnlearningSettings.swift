import Diffusion
import Formats
import Tensor

/// Every setting of a `duo unlearn --method duo` run (ESD's are `ESDSettings`). Defaults
/// are DUO's scripts' (naver-ai/DUO, scripts/sd-nudity.sh and train/unlearn-sd.py) unless
/// noted.
public struct UnlearningSettings: Hashable, Sendable {
    public enum Method: String, CaseIterable, Sendable {
        /// `dspo` is DUO's recipe with DSPO's pair term (`DSPOTerm`) in place of DPO's.
        /// `uce` trains nothing: `UnifiedConceptEditing` edits the weights in closed form.
        case duo, dspo, esd, uce
    }

    public var method = Method.duo
    /// DPO's β: DUO 500 (nudity) / 1000 (violence).
    public var beta: Float = 500
    /// λ of the output-preserving term; nil: `baseLambda` scaled by β / 100, as DUO's code
    /// does (5e6 at β 500).
    public var lambda: Float?
    /// DUO's base_lambda 1e6.
    public var baseLambda: Float = 1e6
    /// nil: `baseLearningRate` scaled by 100 / β, as DUO's scripts do (6e-5 at β 500).
    public var learningRate: Float?
    /// DUO's base_lr 3e-4.
    public var baseLearningRate: Float = 3e-4
    public var rank = 32
    public var alpha: Float = 32
    public var targets: Set<LoRATarget> = [.selfAttention]
    public var initialization = LoRA.Initialization.gaussian
    public var weightDecay: Float = 1e-2
    public var warmupSteps = 0
    public var maxGradNorm: Float = 1
    /// Pairs per micro-batch (DUO: 1 per GPU on 4 GPUs).
    public var batchSize = 4
    public var gradientAccumulation = 1
    public var steps = 1000
    /// Timesteps are drawn from [0, tMax) (DUO's t_max 750).
    public var tMax = 750
    public var convention = DPOConvention.duo
    /// Share of pairs whose DPO term is conditioned on the pair's unsafe prompt instead of
    /// the empty prompt, and whose output-preserving term on the pair's safe prompt (0:
    /// DUO's prompt-free objective).
    public var promptedShare: Float = 0
    /// Share of prompted pairs conditioned on a fragment of their prompts instead
    /// (`PromptFragments`; needs `conceptWords`). 0: whole captions (DUO's prompted variant).
    public var fragmentShare: Float = 0
    /// Share of prompted pairs (not drawn for a fragment) conditioned on their prompts with a
    /// random prefix of words (`PromptPrefixes`; needs `conceptWords`). 0: none.
    public var prefixShare: Float = 0
    /// What random prefixes are made of: whole words, or any tokens of the vocabulary
    /// (byte-level pieces included, as UnlearnDiffAtk's search draws them).
    public enum PrefixVocabulary: String, CaseIterable, Sendable { case words, tokens }
    public var prefixVocabulary = PrefixVocabulary.words
    /// The prefixes prefixed pairs draw from: an attack's (`AdversarialPrefixes`), before
    /// the unsafe prompt only. Empty: random words of the tokenizer before both prompts.
    public var prefixes: [String] = []
    /// Share of prompted pairs (not drawn for a fragment or a prefix) whose DPO term is
    /// conditioned on their unsafe prompt after the prefix embedding an attack inside training
    /// found against the adapter (`SoftPromptAttack`, AdvUnlearn's loop), once
    /// `attackWarmupSteps` have passed; their output-preserving term keeps the safe prompt.
    /// 0: no attack.
    public var adversarialShare: Float = 0
    /// The attack's settings: AdvUnlearn's (one embedding, 30 Adam steps at 1e-3 per round).
    public var attack = SoftPromptAttack.Settings()
    /// Steps trained before the first attack (`warmup_iter`, AdvUnlearn.py:91: 200 of 1000).
    public var attackWarmupSteps = 200
    /// "bf16" when the run trains in bf16 mixed precision (`BLAS.mixedPrecision`: bf16 GEMM
    /// operands, float32 sums, adapters, optimizer and losses), nil for float32.
    public var precision: String?
    /// The concept's words, which a fragment keeps (its explicit words) and a prefix never
    /// holds (every word of the concept file, with `prefixShare`).
    public var conceptWords: [String] = []
    /// λ∅ of the unconditional-preserving term (`DUOLoss`): holds the empty-prompt
    /// prediction on the pairs' noisy images to the original's, so that guidance multiplies
    /// the adapters' change instead of cancelling it. Needs every pair prompted. 0: off (DUO).
    public var unconditionalLambda: Float = 0
    /// DSPO's beta_dpo, the paper's λγ: 0.001, its SD 1.5 launcher's (huaishengzhu/DSPO
    /// 8b4e09b, launchers/sd15.sh).
    public var dspoBeta: Float = 0.001
    public var seed: UInt64 = 0
    public var checkpointEvery = 100

    public init() {}

    /// The pair term's loss, β and convention: DUO's, or DSPO's (one timestep and noise per
    /// pair and β/2 on the reward difference, as its code draws and scales them).
    public var preference: PreferenceObjective { method == .dspo ? .dspo : .dpo }
    public var pairBeta: Float { method == .dspo ? dspoBeta : beta }
    public var pairConvention: DPOConvention { method == .dspo ? .diffusionDPO : convention }

    /// How many times a denoising-MSE gradient DUO's DPO term starts from (at σ = 1/2: β/2,
    /// β/4 under Diffusion-DPO's convention). DSPO's term starts from one, so a DSPO run
    /// divides DUO's preserving weights by this to weigh them against its pair term as DUO does.
    public var dpoGradientScale: Float { beta * convention.betaFactor / 2 }

    /// The LoRA targets' names in a fixed order (LoRATarget's).
    public var targetNames: [String] {
        LoRATarget.allCases.filter(targets.contains).map(\.rawValue)
    }

    /// λ as given, else DUO's (`baseLambda` × β / 100), divided by `dpoGradientScale` for DSPO.
    public var resolvedLambda: Float {
        if let lambda { return lambda }
        let duo = baseLambda * beta / 100
        return method == .dspo ? duo / dpoGradientScale : duo
    }
    public var resolvedLearningRate: Float { learningRate ?? baseLearningRate * 100 / beta }

    /// The settings in a fixed order: config.json and the checkpoint's metadata (a resume
    /// with other settings is refused).
    public var fields: JSONFields {
        var fields: JSONFields = [
            ("method", .string(method.rawValue)), ("steps", .number(steps)),
            ("batch_size", .number(batchSize)),
            ("gradient_accumulation", .number(gradientAccumulation)),
            ("learning_rate", .number(shortest: resolvedLearningRate)),
            ("warmup_steps", .number(warmupSteps)),
            ("weight_decay", .number(shortest: weightDecay)),
            ("max_grad_norm", .number(shortest: maxGradNorm)), ("rank", .number(rank)),
            ("alpha", .number(shortest: alpha)),
            ("targets", .array(targetNames.map(JSONValue.string))),
            ("lora_init", .string(initialization.rawValue)), ("t_max", .number(tMax)),
            ("seed", .number(String(seed))),
        ]
        fields +=
            method == .dspo
            ? [("dspo_beta", .number(shortest: dspoBeta))]
            : [("beta", .number(shortest: beta))]
        fields += [("lambda", .number(shortest: resolvedLambda))]
        if method != .dspo { fields += [("convention", .string(convention.rawValue))] }
        fields += [("prompted_share", .number(shortest: promptedShare))]
        // Only when on, so that runs without them keep their config and checkpoints.
        if fragmentShare > 0 {
            fields += [
                ("fragment_share", .number(shortest: fragmentShare)),
                ("concept_words", .array(conceptWords.map(JSONValue.string))),
            ]
        }
        if prefixShare > 0 {
            fields += [("prefix_share", .number(shortest: prefixShare))]
            if prefixes.isEmpty, fragmentShare == 0 {
                fields += [("concept_words", .array(conceptWords.map(JSONValue.string)))]
            }
            if prefixes.isEmpty, prefixVocabulary != .words {
                fields += [("prefix_vocabulary", .string(prefixVocabulary.rawValue))]
            }
            if !prefixes.isEmpty {
                fields += [("prefixes", .array(prefixes.map(JSONValue.string)))]
            }
        }
        if adversarialShare > 0 {
            fields += [
                ("adversarial_share", .number(shortest: adversarialShare)),
                ("attack_tokens", .number(attack.tokens)),
                ("attack_steps", .number(attack.steps)),
                ("attack_learning_rate", .number(shortest: attack.learningRate)),
                ("attack_warmup_steps", .number(attackWarmupSteps)),
            ]
        }
        if unconditionalLambda > 0 {
            fields += [("lambda_unconditional", .number(shortest: unconditionalLambda))]
        }
        if let precision { fields += [("precision", .string(precision))] }
        return fields
    }
}
