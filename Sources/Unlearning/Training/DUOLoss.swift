import Diffusion
import Tensor

/// One DUO step's inputs: B pairs in model space, the noise each pair shares, and a
/// timestep per image.
public struct PairBatch {
    /// x₀ʷ, the safe images (winners): [B, C, h, w].
    public var safe: Tensor
    /// x₀ˡ, the unsafe images (losers): [B, C, h, w].
    public var unsafe: Tensor
    /// ε, one draw per pair, shared by its two images: [B, C, h, w].
    public var noise: Tensor
    public var safeTimesteps: [Int]
    public var unsafeTimesteps: [Int]

    public init(
        safe: Tensor, unsafe: Tensor, noise: Tensor, safeTimesteps: [Int], unsafeTimesteps: [Int]
    ) {
        self.safe = safe
        self.unsafe = unsafe
        self.noise = noise
        self.safeTimesteps = safeTimesteps
        self.unsafeTimesteps = unsafeTimesteps
    }
}

/// The conditioning of one DUO step: the empty prompt's encoding [1, S, D] and, for
/// prompted pairs, each pair's context for the DPO term and for the output-preserving term
/// ([B, S, D] each; nil: the empty prompt).
public struct PromptContexts {
    public var empty: Tensor
    public var pairs: Tensor?
    public var prior: Tensor?

    public init(empty: Tensor, pairs: Tensor? = nil, prior: Tensor? = nil) {
        self.empty = empty
        self.pairs = pairs
        self.prior = prior
    }

    /// The UNet's context for DUOLoss's inputs [unsafe, safe, prior(, unsafe, safe on ∅)]
    /// of `batch` pairs each: [3B or 5B, S, D].
    func context(batch b: Int, unconditional: Bool) -> Tensor {
        let empty = concat(Array(repeating: self.empty, count: b), axis: 0)
        let pairContext = pairs ?? empty
        return concat(
            [pairContext, pairContext, prior ?? empty] + (unconditional ? [empty, empty] : []),
            axis: 0)
    }
}

/// How the DPO term is scaled, and how timesteps are drawn (see `DUOLoss`).
public enum DPOConvention: String, CaseIterable, Sendable {
    /// DUO's code (naver-ai/DUO, train/unlearn-sd.py): a timestep per image, no 1/2.
    case duo
    /// Diffusion-DPO's code (Wallace et al. 2024, train.py): one timestep per pair, and
    /// β/2 inside the sigmoid (so its beta_dpo 1000 is DUO's beta 500).
    case diffusionDPO = "diffusion-dpo"

    var betaFactor: Float { self == .duo ? 1 : 0.5 }
}

/// What a step computed: the loss to minimize and the numbers that show a run's health.
public struct LossTerms {
    /// preference + λ · prior, a scalar with a graph back to the adapters.
    public var loss: Tensor
    /// The pair term: DPO's (DUO) or DSPO's (`PreferenceObjective`).
    public var preference: Float
    public var prior: Float
    /// The unconditional-preserving term (0 unless `unconditionalLambda` > 0).
    public var unconditional: Float = 0
    /// Share of pairs whose implicit reward prefers the safe image (margin > 0).
    public var implicitAccuracy: Float
    /// Mean of −β·((Lθʷ − Lrefʷ) − (Lθˡ − Lrefˡ)): how far the model prefers safe over unsafe.
    public var rewardMargin: Float
    /// Mean per-image denoising MSE of the trained (θ) and reference model on each side.
    public var mseTrainedSafe: Float
    public var mseTrainedUnsafe: Float
    public var mseReferenceSafe: Float
    public var mseReferenceUnsafe: Float
}

/// DUO's objective (Park et al. 2024, eq. 8 with the prompt-free Diffusion-DPO loss of
/// Wallace et al. 2024, eq. 14), as DUO's code computes it:
///
///   L = mean_i −log σ(−β [(‖ε − εθ(xʷ_t)‖² − ‖ε − εref(xʷ_t)‖²) − (‖ε − εθ(xˡ_t)‖² − ‖ε − εref(xˡ_t)‖²)])
///     + λ · mean ‖εθ(ε, T) − εref(ε, T)‖²
///
/// with per-image MSE (mean over C, h, w), the empty prompt everywhere, and the output-
/// preserving term on pure noise (the pair's ε) at the last timestep T. εref is the same
/// UNet with the adapters switched off.
///
/// Prompted pairs (`pairPrompts`, `priorPrompts`, [B, S, D]): a pair's two images may be
/// conditioned on its unsafe prompt instead, as Diffusion-DPO conditions on captions, with
/// its output-preserving term then on the safe prompt. Under classifier-free guidance,
/// ε(x, ∅) + w (ε(x, c) − ε(x, ∅)), a prompt-free run that moves ε(x, ∅) away from the
/// concept more than ε(x, c) has the guidance add the concept back (docs/experiments/prompted-pairs.md).
///
/// Unconditional preservation (`unconditionalLambda` λ∅ > 0, with `pairPrompts` given;
/// without them there is no term) adds
///
///   λ∅ · mean ‖εθ(x_t, ∅) − εref(x_t, ∅)‖²
///
/// over both images of every pair in the batch, so every pair should be prompted (`duo
/// unlearn` refuses a share below 1): the empty-prompt prediction on the very inputs the
/// DPO term moves is held to the original's. Guidance then sees the adapters' whole change in
/// ε(x, c) − ε(x, ∅), which it multiplies by w; an adapter that moves ε(x, c) and ε(x, ∅)
/// alike changes the guided prediction by 1/w as much (docs/experiments/prompted-pairs.md).
///
/// With adapters in the text encoder the conditioning itself depends on them: the trained
/// pass takes the contexts the adapted encoder gives (with a graph back to its adapters),
/// the reference pass `referencePrompts`, the original encoder's.
public enum DUOLoss {
    public static func compute(
        unet: UNet2DConditionModel, lora: LoRASet, schedule: NoiseSchedule,
        predictionType: SchedulerConfig.PredictionType,
        batch: PairBatch, emptyPrompt: Tensor, pairPrompts: Tensor? = nil,
        priorPrompts: Tensor? = nil, referencePrompts: PromptContexts? = nil,
        beta: Float, lambda: Float, unconditionalLambda: Float = 0,
        convention: DPOConvention = .duo,
        preference: PreferenceObjective = .dpo
    ) -> LossTerms {
        let b = batch.safe.shape[0]
        let last = schedule.numTrainTimesteps - 1
        let noisyUnsafe = schedule.addNoise(
            original: batch.unsafe, noise: batch.noise, timesteps: batch.unsafeTimesteps)
        let noisySafe = schedule.addNoise(
            original: batch.safe, noise: batch.noise, timesteps: batch.safeTimesteps)
        // [unsafe, safe, prior] in one UNet call, as DUO's code batches them; then the same
        // noisy images on the empty prompt for unconditional preservation, as the UNet's
        // shared samples (contexts 3B..<5B pair with samples 0..<2B, which the layers
        // before the first cross-attention then compute once).
        let preservesUnconditional = unconditionalLambda > 0 && pairPrompts != nil
        let input = concat([noisyUnsafe, noisySafe, batch.noise], axis: 0)
        let timesteps =
            batch.unsafeTimesteps + batch.safeTimesteps + Array(repeating: last, count: b)
        let trainedPrompts = PromptContexts(
            empty: emptyPrompt, pairs: pairPrompts, prior: priorPrompts)
        let context = trainedPrompts.context(batch: b, unconditional: preservesUnconditional)
        let sizes = Array(repeating: b, count: preservesUnconditional ? 5 : 3)
        let t = timesteps.map(Float.init)
        let trained = split(unet(input, timesteps: t, context: context), sizes: sizes, axis: 0)
        let reference = lora.withDisabled {
            GradMode.withNoGrad {
                let context =
                    referencePrompts?.context(batch: b, unconditional: preservesUnconditional)
                    ?? context
                return split(unet(input, timesteps: t, context: context), sizes: sizes, axis: 0)
            }
        }
        let targetUnsafe = target(
            schedule, predictionType, batch.unsafe, batch.noise, batch.unsafeTimesteps)
        let targetSafe = target(
            schedule, predictionType, batch.safe, batch.noise, batch.safeTimesteps)
        var terms = objective(
            trained: (trained[0], trained[1], trained[2]),
            reference: (reference[0], reference[1], reference[2]),
            targets: (targetUnsafe, targetSafe), beta: beta, lambda: lambda, convention: convention,
            preference: preference)
        if preservesUnconditional {
            let term = unconditionalTerm(
                trained: (trained[3], trained[4]), reference: (reference[3], reference[4]))
            terms.loss = terms.loss + term * unconditionalLambda
            terms.unconditional = term.item
        }
        return terms
    }

    /// mean ‖εθ(x_t, ∅) − εref(x_t, ∅)‖² over the unsafe and the safe images, [B, C, h, w] each.
    public static func unconditionalTerm(
        trained: (unsafe: Tensor, safe: Tensor), reference: (unsafe: Tensor, safe: Tensor)
    ) -> Tensor {
        let unsafe = trained.unsafe - reference.unsafe
        let safe = trained.safe - reference.safe
        return (mean(unsafe * unsafe) + mean(safe * safe)) * 0.5
    }

    /// The loss from the predictions: trained and reference outputs on (unsafe, safe,
    /// prior) inputs, each [B, C, h, w], and the targets of the unsafe and safe images. The
    /// pair term is DPO's, or with `preference` .dspo DSPO's (`DSPOTerm`), whose inside term
    /// is DPO's.
    public static func objective(
        trained: (unsafe: Tensor, safe: Tensor, prior: Tensor),
        reference: (unsafe: Tensor, safe: Tensor, prior: Tensor),
        targets: (unsafe: Tensor, safe: Tensor), beta: Float, lambda: Float,
        convention: DPOConvention, preference: PreferenceObjective = .dpo
    ) -> LossTerms {
        let b = trained.safe.shape[0]
        let trainedUnsafe = perImageMSE(trained.unsafe, targets.unsafe)  // [B]
        let trainedSafe = perImageMSE(trained.safe, targets.safe)
        let referenceUnsafe = perImageMSE(reference.unsafe, targets.unsafe)
        let referenceSafe = perImageMSE(reference.safe, targets.safe)
        // inside = −β (ΔL_safe − ΔL_unsafe); the safe image is the winner.
        let difference = (trainedSafe - referenceSafe) - (trainedUnsafe - referenceUnsafe)
        let inside = difference * (-beta * convention.betaFactor)
        let pairTerm: Tensor
        switch preference {
        case .dpo: pairTerm = mean(-logSigmoid(inside))
        case .dspo:
            pairTerm = DSPOTerm.loss(
                trainedSafe: trained.safe, referenceSafe: reference.safe, targetSafe: targets.safe,
                inside: inside, beta: beta)
        }
        let priorDelta = trained.prior - reference.prior
        let prior = mean(priorDelta * priorDelta)
        let margins = inside.scalars
        return LossTerms(
            loss: pairTerm + prior * lambda, preference: pairTerm.item, prior: prior.item,
            implicitAccuracy: Float(margins.filter { $0 > 0 }.count) / Float(b),
            rewardMargin: margins.reduce(0, +) / Float(b),
            mseTrainedSafe: mean(trainedSafe).item, mseTrainedUnsafe: mean(trainedUnsafe).item,
            mseReferenceSafe: mean(referenceSafe).item,
            mseReferenceUnsafe: mean(referenceUnsafe).item)
    }

    /// The regression target: ε, the velocity (v-prediction) or x₀ (sample prediction).
    public static func target(
        _ schedule: NoiseSchedule, _ type: SchedulerConfig.PredictionType, _ x0: Tensor,
        _ noise: Tensor, _ timesteps: [Int]
    ) -> Tensor {
        switch type {
        case .epsilon: return noise
        case .vPrediction: return schedule.velocity(sample: x0, noise: noise, timesteps: timesteps)
        case .sample: return x0
        }
    }

    /// mean over all but the batch axis of (a − b)²: [B, ...] -> [B].
    static func perImageMSE(_ prediction: Tensor, _ target: Tensor) -> Tensor {
        let difference = prediction - target
        return mean(difference * difference, axes: Array(1..<prediction.rank))
    }
}
