import Formats
import Tensor

/// A sampler over a DDPM noise schedule: DDIMScheduler, DDPMScheduler or PNDMScheduler.
///
/// Typical use (text-to-image; SDEdit starts from `timesteps(strength:)` instead):
/// ```swift
/// var scheduler = try DDIMScheduler(contentsOf: folder + "/scheduler/scheduler_config.json")
/// try scheduler.setTimesteps(50)
/// var x = Tensor.randn([1, 4, 64, 64], key: key)  // all three start at σ = 1
/// for (i, t) in scheduler.timesteps.enumerated() {
///     let output = unet(x, t)  // none of them scales the model input
///     x = scheduler.step(modelOutput: output, timestep: t, sample: x,
///                        key: key.fold(in: UInt64(i))).prevSample
/// }
/// ```
///
/// `step` is mutating: a multistep method (PNDM) remembers earlier model outputs, so one
/// scheduler value serves one sampling run (images sampled side by side each need their
/// own copy), and `setTimesteps` starts a new run. DDIM and DDPM keep no state.
public protocol DiffusionScheduler: Sendable {
    var config: SchedulerConfig { get }
    var schedule: NoiseSchedule { get }
    /// The inference timesteps, noisiest first, one per `step`: every training timestep
    /// until `setTimesteps` picks fewer. PNDM visits some twice, so it may hold more than
    /// the step count asked for.
    var timesteps: [Int] { get }
    /// The step count of the last `setTimesteps` (diffusers' `num_inference_steps`); nil
    /// before it.
    var numInferenceSteps: Int? { get }

    /// Picks `count` inference steps by `config.timestepSpacing` (diffusers'
    /// `set_timesteps`) and starts a new run. Throws when `count` is not in
    /// 1...numTrainTimesteps (or too few for the method).
    mutating func setTimesteps(_ count: Int) throws

    /// One denoising step from `timestep` to the next inference timestep. `key` gives the
    /// step's fresh noise where the method adds some (DDPM; DDIM with eta > 0).
    mutating func step(modelOutput: Tensor, timestep: Int, sample: Tensor, key: RandomKey)
        -> SchedulerStepOutput

    /// The same step with its noise given (nil where the step adds none): for noise shared
    /// across a batch, or to replay a reference run.
    mutating func step(modelOutput: Tensor, timestep: Int, sample: Tensor, varianceNoise: Tensor?)
        -> SchedulerStepOutput
}

/// What a step returns (diffusers' `prev_sample` and `pred_original_sample`).
public struct SchedulerStepOutput {
    /// x_{t−1}: the sample at the next inference timestep.
    public let prevSample: Tensor
    /// The x₀ the step predicted from the model output (after clipping, if configured);
    /// nil where the method predicts none (PNDM, as in diffusers).
    public let predOriginalSample: Tensor?
}

/// A request a scheduler cannot serve (a step count or strength out of range), in one line.
public typealias SchedulerError = OneLineError

extension DiffusionScheduler {
    /// ᾱ_t for t = 0 ..< numTrainTimesteps.
    public var alphasCumprod: [Float] { schedule.alphasCumprod }

    public var numTrainTimesteps: Int { schedule.numTrainTimesteps }

    /// x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε with one timestep per sample (see `NoiseSchedule`).
    public func addNoise(original: Tensor, noise: Tensor, timesteps: [Int]) -> Tensor {
        schedule.addNoise(original: original, noise: noise, timesteps: timesteps)
    }

    /// The v-prediction target √ᾱ_t ε − √(1 − ᾱ_t) x₀ (see `NoiseSchedule`).
    public func velocity(sample: Tensor, noise: Tensor, timesteps: [Int]) -> Tensor {
        schedule.velocity(sample: sample, noise: noise, timesteps: timesteps)
    }

    /// The inference timesteps that img2img / SDEdit runs at `strength` in (0, 1]: of the
    /// N steps set by `setTimesteps`, the first N − int(N · strength) are skipped
    /// (diffusers' img2img `get_timesteps`, whose schedulers all have order 1 here). For
    /// DDIM and DDPM that leaves the last int(N · strength) timesteps. PNDM's list (PLMS)
    /// is one longer than N and keeps one more; below strength 1 it lacks the repeated
    /// timestep PLMS's first step expects, so after the second step the sample is one
    /// inference timestep behind the one each later step is given. That is how diffusers'
    /// img2img pipeline runs PNDM, and so do we. Noise x₀ to the first of them with
    /// `addNoise`, then step through them all.
    public func timesteps(strength: Double) throws -> [Int] {
        guard strength > 0, strength <= 1 else {
            throw SchedulerError("strength \(strength) is outside (0, 1]")
        }
        let count = numInferenceSteps ?? timesteps.count
        let kept = min(Int(Double(count) * strength), count)
        guard kept > 0 else {
            throw SchedulerError(
                "strength \(strength) of \(count) steps leaves no step to run "
                    + "(int(\(count) × \(strength)) = 0): raise the strength or the steps")
        }
        return Array(timesteps.dropFirst(count - kept))
    }
}

extension SchedulerConfig {
    /// diffusers' `set_timesteps(count)`: `count` training timesteps, noisiest first.
    func inferenceTimesteps(_ count: Int) throws -> [Int] {
        guard (1...numTrainTimesteps).contains(count) else {
            throw SchedulerError(
                "\(count) inference steps: expected 1 to \(numTrainTimesteps) "
                    + "(num_train_timesteps)")
        }
        let timesteps = spacedTimesteps(count)
        if let last = timesteps.first, last >= numTrainTimesteps {
            throw SchedulerError(
                "\(count) steps with steps_offset \(stepsOffset) reach timestep \(last), "
                    + "past the last training timestep \(numTrainTimesteps - 1)")
        }
        return timesteps
    }

    private func spacedTimesteps(_ count: Int) -> [Int] {
        let total = numTrainTimesteps
        switch timestepSpacing {
        case .leading:
            // Every ⌊T/N⌋-th timestep from 0, shifted by the offset.
            let ratio = total / count
            return (0..<count).reversed().map { $0 * ratio + stepsOffset }
        case .trailing:
            // From T down in real steps of T/N, rounded half to even, minus 1: numpy's
            // arange(T, 0, -T/N) makes element i as start + i * (element 1 − start).
            // (That arange sometimes yields an extra element, -1 after rounding, which
            // diffusers keeps and then indexes ᾱ with; we stop at N.)
            let start = Double(total)
            let second = start - Double(total) / Double(count)
            let delta = second - start
            return (0..<count).map { i in
                let value = i == 0 ? start : i == 1 ? second : start + Double(i) * delta
                return Int(value.rounded(.toNearestOrEven)) - 1
            }
        case .linspace:
            // numpy's linspace(0, T − 1, N) (element i is i · step, the last exactly T − 1),
            // rounded half to even.
            guard count > 1 else { return [0] }
            let step = Double(total - 1) / Double(count - 1)
            return (0..<count).reversed().map { i in
                i == count - 1 ? total - 1 : Int((Double(i) * step).rounded(.toNearestOrEven))
            }
        }
    }
}

/// The model output read as x₀ and ε, shared by both schedulers. Scalars are float32 and
/// combined in diffusers' order, so that results match it bit for bit.
extension SchedulerConfig {
    /// x̂₀ from the output at a timestep with ᾱ = `alphaProd`, before any clipping:
    /// ε: (x_t − √(1 − ᾱ) ε̂) / √ᾱ (Ho et al. 2020, eq. 4 solved for x₀);
    /// v: √ᾱ x_t − √(1 − ᾱ) v̂ (Salimans & Ho 2022, section 4); x₀: the output itself.
    func predictedOriginal(modelOutput: Tensor, sample: Tensor, alphaProd: Float) -> Tensor {
        let betaProd = 1 - alphaProd
        switch predictionType {
        case .epsilon:
            return SchedulerMath.divide(
                sample - betaProd.squareRoot() * modelOutput, by: alphaProd.squareRoot())
        case .vPrediction:
            return alphaProd.squareRoot() * sample - betaProd.squareRoot() * modelOutput
        case .sample:
            return modelOutput
        }
    }

    /// ε̂ from the same output, given the unclipped x̂₀ (diffusers' use_clipped_model_output
    /// false): ε: the output; v: √ᾱ v̂ + √(1 − ᾱ) x_t; x₀: (x_t − √ᾱ x̂₀) / √(1 − ᾱ).
    func predictedEpsilon(
        modelOutput: Tensor, sample: Tensor, predictedOriginal: Tensor, alphaProd: Float
    ) -> Tensor {
        let betaProd = 1 - alphaProd
        switch predictionType {
        case .epsilon:
            return modelOutput
        case .vPrediction:
            return alphaProd.squareRoot() * modelOutput + betaProd.squareRoot() * sample
        case .sample:
            return SchedulerMath.divide(
                sample - alphaProd.squareRoot() * predictedOriginal, by: betaProd.squareRoot())
        }
    }

    /// x̂₀ clamped to ±clipSampleRange when `clipSample` is set.
    func clipped(_ predictedOriginal: Tensor) -> Tensor {
        clipSample
            ? clamp(predictedOriginal, min: -clipSampleRange, max: clipSampleRange)
            : predictedOriginal
    }
}
