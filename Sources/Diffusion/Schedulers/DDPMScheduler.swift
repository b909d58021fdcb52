import Foundation
import Tensor

/// Ancestral sampling of denoising diffusion probabilistic models (Ho et al., NeurIPS
/// 2020), over all training timesteps or a subset. Matches diffusers' DDPMScheduler.
public struct DDPMScheduler: DiffusionScheduler {
    public let config: SchedulerConfig
    public let schedule: NoiseSchedule
    public private(set) var timesteps: [Int]
    /// The step count of the last `setTimesteps`; nil before it.
    public private(set) var numInferenceSteps: Int?

    public init(config: SchedulerConfig) {
        self.config = config
        schedule = NoiseSchedule(config: config)
        timesteps = Array((0..<config.numTrainTimesteps).reversed())
    }

    /// Reads a `scheduler_config.json` (DDPM's own, or another scheduler's over the same
    /// betas, such as Stable Diffusion 1.x's PNDMScheduler config).
    public init(contentsOf path: String) throws {
        self.init(config: try SchedulerConfig(contentsOf: path, for: .ddpm))
    }

    public mutating func setTimesteps(_ count: Int) throws {
        timesteps = try config.inferenceTimesteps(count)
        numInferenceSteps = count
    }

    /// One step with its noise drawn from `key` (none at timestep 0).
    public func step(modelOutput: Tensor, timestep: Int, sample: Tensor, key: RandomKey)
        -> SchedulerStepOutput
    {
        let noise = timestep > 0 ? Tensor.randn(sample.shape, key: key) : nil
        return step(
            modelOutput: modelOutput, timestep: timestep, sample: sample,
            varianceNoise: noise)
    }

    /// One DDPM step, x_t → x_{t'} with t' the next of `timesteps` (Ho et al. 2020,
    /// algorithm 2, through x̂₀ and the posterior of eqs. 6–7).
    ///
    ///     ours                  paper
    ///     sample                x_t
    ///     alphaProd             ᾱ_t
    ///     alphaProdPrev         ᾱ_{t−1}: ᾱ at t' (1 past timestep 0)
    ///     currentAlpha/Beta     α_t, β_t of the jump t → t': ᾱ_t / ᾱ_{t'}, 1 − that
    ///     predOriginal          x̂₀, eq. 4 solved for x₀ with ε_θ(x_t)
    ///     originalCoefficient   √ᾱ_{t−1} β_t / (1 − ᾱ_t), the weight of x̂₀ in μ̃_t (eq. 7)
    ///     sampleCoefficient     √α_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t), the weight of x_t
    ///     standardDeviation     σ_t: √β̃_t (eq. 7) or √β_t, by `config.varianceType`
    ///     varianceNoise         z ~ N(0, I); needed when timestep > 0
    public func step(
        modelOutput: Tensor, timestep: Int, sample: Tensor, varianceNoise: Tensor?
    ) -> SchedulerStepOutput {
        // modelOutput, sample, varianceNoise: [B, C, H, W] (any shape, the same for all)
        precondition(
            modelOutput.shape == sample.shape, "output \(modelOutput.shape) vs \(sample.shape)")
        guard let index = timesteps.firstIndex(of: timestep) else {
            preconditionFailure("timestep \(timestep) is not one of the scheduler's timesteps")
        }

        // 1. ᾱ now and at the next timestep, and the α, β of the jump between them.
        let prevTimestep = index + 1 < timesteps.count ? timesteps[index + 1] : -1
        let alphaProd = schedule.alphasCumprod[timestep]
        let alphaProdPrev: Float = prevTimestep >= 0 ? schedule.alphasCumprod[prevTimestep] : 1
        let (betaProd, betaProdPrev) = (1 - alphaProd, 1 - alphaProdPrev)
        let currentAlpha = alphaProd / alphaProdPrev
        let currentBeta = 1 - currentAlpha

        // 2. x̂₀ from the output, clipped if configured.
        let unclipped = config.predictedOriginal(
            modelOutput: modelOutput, sample: sample, alphaProd: alphaProd)
        let predOriginal = config.clipped(unclipped)

        // 3. The posterior mean μ̃_t(x_t, x̂₀) (eq. 7).
        let originalCoefficient = (alphaProdPrev.squareRoot() * currentBeta) / betaProd
        let sampleCoefficient = currentAlpha.squareRoot() * betaProdPrev / betaProd
        var prevSample = originalCoefficient * predOriginal + sampleCoefficient * sample

        // 4. x_{t−1} = μ̃_t + σ_t z, no noise at t = 0 (algorithm 2, line 4).
        if timestep > 0 {
            guard let varianceNoise else {
                preconditionFailure("timestep > 0 needs noise (or a key)")
            }
            let sigma = standardDeviation(
                betaProd: betaProd, betaProdPrev: betaProdPrev, currentBeta: currentBeta)
            prevSample = prevSample + sigma * varianceNoise
        }
        return SchedulerStepOutput(prevSample: prevSample, predOriginalSample: predOriginal)
    }

    /// σ_t: the fixed small variance β̃_t = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · β_t (eq. 7, floored
    /// at 1e-20 as diffusers does) or the large one β_t (section 3.2), as a deviation.
    private func standardDeviation(betaProd: Float, betaProdPrev: Float, currentBeta: Float)
        -> Float
    {
        let small = max(betaProdPrev / betaProd * currentBeta, 1e-20)
        switch config.varianceType {
        case .fixedSmall: return small.squareRoot()
        case .fixedSmallLog: return exp(0.5 * log(small))
        case .fixedLarge: return currentBeta.squareRoot()
        }
    }
}
