import Tensor

/// Pseudo numerical methods for diffusion models (Liu et al., ICLR 2022): DDIM's update
/// read as the "transfer part" of an ODE solver, fed a noise estimate that a classical
/// method combines from several model outputs: the pseudo linear multistep method (PLMS,
/// 4th-order Adams–Bashforth weights) and, to start it, the pseudo Runge–Kutta method
/// (PRK). Stable Diffusion 1.x's own scheduler; matches diffusers' PNDMScheduler.
///
/// Deterministic, and stateful: a step remembers the model outputs of the timesteps passed
/// (`ets`), so a value of this type serves one run through `timesteps` from its start, and
/// `setTimesteps` begins the next. With `skipPrkSteps` (Stable Diffusion's setting) N steps
/// make N + 1 model evaluations, the second timestep visited twice; without, the first
/// three steps are 4-evaluation Runge–Kutta steps (N + 9 in all).
public struct PNDMScheduler: DiffusionScheduler {
    public let config: SchedulerConfig
    public let schedule: NoiseSchedule
    /// One entry per `step`: the Runge–Kutta warm-up's (`prkTimesteps`), then PLMS's.
    public private(set) var timesteps: [Int]
    /// The step count of the last `setTimesteps`; nil before it (and `step` needs it).
    public private(set) var numInferenceSteps: Int?
    /// ᾱ before timestep 0, for the last step: 1 with set_alpha_to_one, else ᾱ_0.
    public let finalAlphaCumprod: Float
    /// The first 12 `timesteps`, three Runge–Kutta steps of 4 evaluations; empty with
    /// `skipPrkSteps`.
    public private(set) var prkTimesteps: [Int] = []
    /// The model outputs at the last (up to) four timesteps of the run, oldest first:
    /// what the multistep combination weighs (diffusers' `ets`).
    public private(set) var ets: [Tensor] = []
    /// Steps taken since `setTimesteps`: which part of a method the next step is.
    public private(set) var counter = 0
    /// x_t of a step that evaluates the model more than once: every evaluation of one
    /// Runge–Kutta step, and PLMS's first step done twice, leave from the same sample.
    private var curSample: Tensor?
    /// The Runge–Kutta step's weighted sum of the outputs so far (1/6, 1/3, 1/3, 1/6).
    private var curModelOutput: Tensor?

    /// How many steps the Runge–Kutta warm-up covers: the history PLMS's 4th-order weights
    /// need (diffusers' `pndm_order`).
    static let rungeKuttaSteps = 3

    public init(config: SchedulerConfig) {
        precondition(config.predictionType != .sample, "PNDM steps from epsilon or v_prediction")
        self.config = config
        schedule = NoiseSchedule(config: config)
        timesteps = Array((0..<config.numTrainTimesteps).reversed())
        finalAlphaCumprod = config.setAlphaToOne ? 1 : schedule.alphasCumprod[0]
    }

    /// Reads a `scheduler_config.json` (PNDM's own, as Stable Diffusion 1.x folders ship,
    /// or another scheduler's over the same betas).
    public init(contentsOf path: String) throws {
        self.init(config: try SchedulerConfig(contentsOf: path, for: .pndm))
    }

    /// N inference timesteps spaced as DDIM's, then laid out for the method: with
    /// `skipPrkSteps` the second one repeated (PLMS's first step is taken twice, see
    /// `linearMultistep`); without, the first three Runge–Kutta steps expanded to their
    /// 4 evaluations each. Needs N ≥ 4 without `skipPrkSteps`.
    public mutating func setTimesteps(_ count: Int) throws {
        let spaced = try config.inferenceTimesteps(count)  // noisiest first
        if config.skipPrkSteps {
            prkTimesteps = []
            timesteps = spaced
            if spaced.count > 1 { timesteps.insert(spaced[1], at: 1) }
        } else {
            guard count > Self.rungeKuttaSteps else {
                throw SchedulerError(
                    "PNDM with skip_prk_steps false needs at least \(Self.rungeKuttaSteps + 1) "
                        + "inference steps, got \(count)")
            }
            let half = numTrainTimesteps / count / 2
            // From t to t' in one Runge–Kutta step: the model at t, twice at the midpoint,
            // once at t' (the midpoint rounded down as diffusers' integer timesteps are).
            prkTimesteps = []
            for i in 0..<Self.rungeKuttaSteps {
                let (from, to) = (spaced[i], spaced[i + 1])
                prkTimesteps += [from, to + half, to + half, to]
            }
            timesteps = prkTimesteps + spaced.dropFirst(Self.rungeKuttaSteps)
        }
        numInferenceSteps = count
        ets = []
        counter = 0
        curSample = nil
        curModelOutput = nil
    }

    /// One step; PNDM draws no noise, so `key` is unused.
    public mutating func step(modelOutput: Tensor, timestep: Int, sample: Tensor, key: RandomKey)
        -> SchedulerStepOutput
    {
        step(modelOutput: modelOutput, timestep: timestep, sample: sample, varianceNoise: nil)
    }

    /// The next step of the run: `timestep` and `sample` must be the run's next timestep
    /// and the sample the previous step returned. `varianceNoise` is unused.
    public mutating func step(
        modelOutput: Tensor, timestep: Int, sample: Tensor, varianceNoise: Tensor? = nil
    ) -> SchedulerStepOutput {
        // modelOutput, sample: [B, C, H, W] (any shape, the same for both)
        precondition(
            modelOutput.shape == sample.shape, "output \(modelOutput.shape) vs \(sample.shape)")
        precondition((0..<numTrainTimesteps).contains(timestep), "timestep \(timestep)")
        guard let steps = numInferenceSteps else { preconditionFailure("setTimesteps before step") }
        let prevSample =
            counter < prkTimesteps.count
            ? rungeKutta(modelOutput, timestep, sample, steps: steps)
            : linearMultistep(modelOutput, timestep, sample, steps: steps)
        counter += 1
        return SchedulerStepOutput(prevSample: prevSample, predOriginalSample: nil)
    }

    /// PRK, the classical 4th-order Runge–Kutta method with the transfer part in place of
    /// Euler's update: four evaluations per step from t to t', each leaving from x_t (the
    /// first three reach the midpoint or t' with the latest output, the fourth t' with
    /// their weighted sum). The first evaluation's output goes to `ets` for PLMS.
    private mutating func rungeKutta(
        _ output: Tensor, _ timestep: Int, _ sample: Tensor, steps: Int
    ) -> Tensor {
        let stage = counter % 4
        // Stages 0 and 2 go half a step on, 1 and 3 to where their timestep says.
        let prevTimestep = timestep - (stage % 2 == 1 ? 0 : numTrainTimesteps / steps / 2)
        let start = prkTimesteps[counter - stage]
        var estimate = output
        switch stage {
        case 0:
            curModelOutput = Float(1.0 / 6.0) * output
            ets.append(output)
            curSample = sample
        case 1, 2:
            curModelOutput = curModelOutput! + Float(1.0 / 3.0) * output
        default:
            estimate = curModelOutput! + Float(1.0 / 6.0) * output
            curModelOutput = nil
        }
        return transfer(
            curSample ?? sample, from: start, to: prevTimestep, modelOutput: estimate)
    }

    /// PLMS: the transfer part fed the Adams–Bashforth combination of the last outputs,
    /// ε' = (55 e_t − 59 e_{t+δ} + 37 e_{t+2δ} − 9 e_{t+3δ}) / 24 once four are known.
    /// Without a Runge–Kutta warm-up it starts with lower orders: the first step is taken
    /// twice, with e_t and then with the mean of e_t and the output at the point it
    /// reached (an improved Euler step, the run's second timestep repeated for it); the
    /// next two use the 2nd- and 3rd-order weights.
    private mutating func linearMultistep(
        _ output: Tensor, _ timestep: Int, _ sample: Tensor, steps: Int
    ) -> Tensor {
        precondition(
            config.skipPrkSteps || ets.count >= Self.rungeKuttaSteps,
            "PNDM runs its Runge–Kutta steps first")
        let stride = numTrainTimesteps / steps
        var (from, to) = (timestep, timestep - stride)
        if counter == 1 {
            // The first step again, from its own start.
            (from, to) = (timestep + stride, timestep)
        } else {
            ets = Array(ets.suffix(3)) + [output]
        }
        var start = sample
        let estimate: Tensor
        switch (ets.count, counter) {
        case (1, 0):
            estimate = output
            curSample = sample
        case (1, _):
            estimate = SchedulerMath.divide(output + ets[0], by: 2)
            start = curSample!
            curSample = nil
        case (2, _):
            estimate = SchedulerMath.divide(3 * ets[1] - ets[0], by: 2)
        case (3, _):
            estimate = SchedulerMath.divide(23 * ets[2] - 16 * ets[1] + 5 * ets[0], by: 12)
        default:
            estimate =
                Float(1.0 / 24.0) * (55 * ets[3] - 59 * ets[2] + 37 * ets[1] - 9 * ets[0])
        }
        return transfer(start, from: from, to: to, modelOutput: estimate)
    }

    /// The transfer part φ(x_t, ε, t, t') (Liu et al. 2022, eq. 9): DDIM's deterministic
    /// step written so that x_{t'} needs no x̂₀,
    ///
    ///     x_{t'} = √(ᾱ_{t'} / ᾱ_t) x_t − (ᾱ_{t'} − ᾱ_t) ε / d,
    ///     d = ᾱ_t √(1 − ᾱ_{t'}) + √(ᾱ_t (1 − ᾱ_t) ᾱ_{t'}),
    ///
    /// with ᾱ past timestep 0 `finalAlphaCumprod`. A v output is turned into
    /// ε = √ᾱ_t v + √(1 − ᾱ_t) x_t first. Scalars are float32, in diffusers' order.
    private func transfer(
        _ sample: Tensor, from timestep: Int, to prevTimestep: Int, modelOutput: Tensor
    ) -> Tensor {
        let alphaProd = schedule.alphasCumprod[timestep]
        let alphaProdPrev =
            prevTimestep >= 0 ? schedule.alphasCumprod[prevTimestep] : finalAlphaCumprod
        let (betaProd, betaProdPrev) = (1 - alphaProd, 1 - alphaProdPrev)
        let epsilon =
            config.predictionType == .vPrediction
            ? alphaProd.squareRoot() * modelOutput + betaProd.squareRoot() * sample
            : modelOutput
        let sampleCoefficient = (alphaProdPrev / alphaProd).squareRoot()
        let denominator =
            alphaProd * betaProdPrev.squareRoot()
            + (alphaProd * betaProd * alphaProdPrev).squareRoot()
        return sampleCoefficient * sample
            - SchedulerMath.divide((alphaProdPrev - alphaProd) * epsilon, by: denominator)
    }
}
