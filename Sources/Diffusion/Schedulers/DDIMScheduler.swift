import Tensor

/// Denoising diffusion implicit models (Song et al., ICLR 2021): sampling a DDPM-trained
/// model in few steps, deterministic when `eta` is 0. Matches diffusers' DDIMScheduler.
public struct DDIMScheduler: DiffusionScheduler {
    public let config: SchedulerConfig
    public let schedule: NoiseSchedule
    public private(set) var timesteps: [Int]
    /// The step count of the last `setTimesteps`; nil before it (and `step` needs it).
    public private(set) var numInferenceSteps: Int?
    /// η of eq. 16: 0 is deterministic DDIM, 1 gives DDPM's posterior variance. diffusers
    /// passes it to each step; here it is a setting of the scheduler.
    public var eta: Float = 0
    /// ᾱ before timestep 0, for the last step: 1 with set_alpha_to_one, else ᾱ_0.
    public let finalAlphaCumprod: Float

    public init(config: SchedulerConfig) {
        self.config = config
        schedule = NoiseSchedule(config: config)
        timesteps = Array((0..<config.numTrainTimesteps).reversed())
        finalAlphaCumprod = config.setAlphaToOne ? 1 : schedule.alphasCumprod[0]
    }

    /// Reads a `scheduler_config.json` (DDIM's own, or another scheduler's over the same
    /// betas, such as Stable Diffusion 1.x's PNDMScheduler config).
    public init(contentsOf path: String) throws {
        self.init(config: try SchedulerConfig(contentsOf: path, for: .ddim))
    }

    public mutating func setTimesteps(_ count: Int) throws {
        timesteps = try config.inferenceTimesteps(count)
        numInferenceSteps = count
    }

    /// One step with fresh noise from `key` when `eta` > 0 (unused otherwise).
    public func step(modelOutput: Tensor, timestep: Int, sample: Tensor, key: RandomKey)
        -> SchedulerStepOutput
    {
        let noise = eta > 0 ? Tensor.randn(sample.shape, key: key) : nil
        return step(
            modelOutput: modelOutput, timestep: timestep, sample: sample,
            varianceNoise: noise)
    }

    /// One DDIM step, x_t → x_{t−Δ} with Δ = numTrainTimesteps / N (Song et al. 2021, eq. 12).
    ///
    ///     ours               paper (its α_t is DDPM's ᾱ_t)
    ///     sample             x_t
    ///     alphaProd          α_t
    ///     alphaProdPrev      α_{t−1}: ᾱ one inference step later (finalAlphaCumprod past 0)
    ///     predOriginal       "predicted x₀" = (x_t − √(1 − α_t) ε_θ(x_t)) / √α_t
    ///     predEpsilon        ε_θ(x_t)
    ///     stdDev             σ_t(η), eq. 16
    ///     varianceNoise      ε_t ~ N(0, I); needed only when eta > 0
    public func step(
        modelOutput: Tensor, timestep: Int, sample: Tensor, varianceNoise: Tensor? = nil
    ) -> SchedulerStepOutput {
        // modelOutput, sample, varianceNoise: [B, C, H, W] (any shape, the same for all)
        precondition(
            modelOutput.shape == sample.shape, "output \(modelOutput.shape) vs \(sample.shape)")
        precondition((0..<numTrainTimesteps).contains(timestep), "timestep \(timestep)")
        guard let steps = numInferenceSteps else { preconditionFailure("setTimesteps before step") }

        // 1. ᾱ now and one step later. diffusers steps back by T/N also for the "trailing"
        //    and "linspace" spacings, whose lists need not be T/N apart; so do we.
        let prevTimestep = timestep - numTrainTimesteps / steps
        let alphaProd = schedule.alphasCumprod[timestep]
        let alphaProdPrev =
            prevTimestep >= 0 ? schedule.alphasCumprod[prevTimestep] : finalAlphaCumprod
        let (betaProd, betaProdPrev) = (1 - alphaProd, 1 - alphaProdPrev)

        // 2. x̂₀ and ε̂ from the output; ε̂ comes from the unclipped x̂₀.
        let unclipped = config.predictedOriginal(
            modelOutput: modelOutput, sample: sample, alphaProd: alphaProd)
        let predEpsilon = config.predictedEpsilon(
            modelOutput: modelOutput, sample: sample, predictedOriginal: unclipped,
            alphaProd: alphaProd)
        let predOriginal = config.clipped(unclipped)

        // 3. σ_t = η √((1 − α_{t−1}) / (1 − α_t)) √(1 − α_t / α_{t−1})  (eq. 16)
        let variance = (betaProdPrev / betaProd) * (1 - alphaProd / alphaProdPrev)
        let stdDev = eta * variance.squareRoot()

        // 4. x_{t−1} = √α_{t−1} x̂₀ + √(1 − α_{t−1} − σ_t²) ε̂ + σ_t ε_t  (eq. 12)
        let direction = (1 - alphaProdPrev - stdDev * stdDev).squareRoot() * predEpsilon
        var prevSample = alphaProdPrev.squareRoot() * predOriginal + direction
        if eta > 0 {
            guard let varianceNoise else { preconditionFailure("eta > 0 needs noise (or a key)") }
            prevSample = prevSample + stdDev * varianceNoise
        }
        return SchedulerStepOutput(prevSample: prevSample, predOriginalSample: predOriginal)
    }
}
