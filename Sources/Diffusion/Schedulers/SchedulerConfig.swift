import Formats
import Foundation

/// Which scheduler a config is read for: the keys each one honours differ a little
/// (`set_alpha_to_one` is DDIM's and PNDM's, `variance_type` DDPM's, `skip_prk_steps`
/// PNDM's, which also has no sample clipping).
public enum SchedulerKind: String, Sendable, CaseIterable {
    case ddim = "DDIMScheduler"
    case ddpm = "DDPMScheduler"
    case pndm = "PNDMScheduler"

    /// The name options and concept files use ("ddim", "ddpm", "pndm").
    public var shortName: String {
        switch self {
        case .ddim: return "ddim"
        case .ddpm: return "ddpm"
        case .pndm: return "pndm"
        }
    }

    public init?(shortName: String) {
        guard let kind = Self.allCases.first(where: { $0.shortName == shortName }) else {
            return nil
        }
        self = kind
    }
}

/// The settings of a DDIM, DDPM or PNDM scheduler, named after the keys of diffusers'
/// `scheduler/scheduler_config.json`.
///
/// `SchedulerConfig()` holds diffusers' defaults for DDIMScheduler and DDPMScheduler, and a
/// key a file leaves out keeps its class's default, as diffusers' `from_config` does.
public struct SchedulerConfig: Equatable, Sendable {
    /// How the betas run from `betaStart` to `betaEnd` (diffusers' `beta_schedule`).
    public enum BetaSchedule: String, Sendable, CaseIterable {
        case linear
        /// Linear in √β, then squared: Stable Diffusion's schedule.
        case scaledLinear = "scaled_linear"
        /// The cosine schedule of Nichol & Dhariwal 2021, betas capped at 0.999.
        case squaredcosCapV2 = "squaredcos_cap_v2"
    }

    /// What the model predicts (diffusers' `prediction_type`).
    public enum PredictionType: String, Sendable, CaseIterable {
        /// The noise ε (Ho et al. 2020).
        case epsilon
        /// v = √ᾱ ε − √(1 − ᾱ) x₀ (Salimans & Ho 2022).
        case vPrediction = "v_prediction"
        /// x₀ itself.
        case sample
    }

    /// How `setTimesteps` spreads N steps over the training timesteps (diffusers'
    /// `timestep_spacing`; Lin et al. 2024, table 2).
    public enum TimestepSpacing: String, Sendable, CaseIterable {
        case leading, trailing, linspace
    }

    /// DDPM's variance of x_{t−1} given x_t (diffusers' `variance_type`). The learned
    /// variances need a model with twice the output channels and are not supported.
    public enum VarianceType: String, Sendable, CaseIterable {
        /// β̃_t, the posterior variance (Ho et al. 2020, eq. 7).
        case fixedSmall = "fixed_small"
        /// β̃_t too, its standard deviation taken through exp(½ log β̃_t).
        case fixedSmallLog = "fixed_small_log"
        /// β_t (Ho et al. 2020, section 3.2).
        case fixedLarge = "fixed_large"
    }

    public var numTrainTimesteps = 1000
    /// Read as Double, as diffusers (Python floats) reads them.
    public var betaStart = 0.0001
    public var betaEnd = 0.02
    public var betaSchedule = BetaSchedule.linear
    /// Betas given outright (diffusers' `trained_betas`); they replace the schedule.
    public var trainedBetas: [Float]? = nil
    /// Rescales the betas to zero terminal SNR (Lin et al. 2024, algorithm 1).
    public var rescaleBetasZeroSNR = false
    public var predictionType = PredictionType.epsilon
    /// Clamps the predicted x₀ to ±`clipSampleRange` in each step.
    public var clipSample = true
    public var clipSampleRange: Float = 1
    /// DDIM and PNDM: ᾱ before the first training timestep is 1 (true) or ᾱ_0 (false).
    /// diffusers' default is true for DDIM, false for PNDM.
    public var setAlphaToOne = true
    /// Added to every timestep of the "leading" spacing (Stable Diffusion: 1).
    public var stepsOffset = 0
    public var timestepSpacing = TimestepSpacing.leading
    /// DDPM only.
    public var varianceType = VarianceType.fixedSmall
    /// PNDM only: true runs the linear multistep method (PLMS) from the first step; false
    /// starts with three Runge–Kutta steps (PRK) first, as Liu et al. 2022 do.
    public var skipPrkSteps = false

    /// diffusers' defaults for DDIMScheduler and DDPMScheduler.
    public init() {}

    /// Stable Diffusion 1.x as its diffusers pipelines run it (PNDM's `skip_prk_steps`
    /// as SD's folders set it).
    public static var stableDiffusion: SchedulerConfig {
        var config = SchedulerConfig()
        config.betaStart = 0.00085
        config.betaEnd = 0.012
        config.betaSchedule = .scaledLinear
        config.clipSample = false
        config.setAlphaToOne = false
        config.stepsOffset = 1
        config.skipPrkSteps = true
        return config
    }

    /// Schedulers whose configs describe the same beta table (diffusers'
    /// `KarrasDiffusionSchedulers`, which `from_config` converts between).
    static let compatibleClasses = [
        "DDIMScheduler", "DDPMScheduler", "PNDMScheduler", "LMSDiscreteScheduler",
        "EulerDiscreteScheduler", "HeunDiscreteScheduler", "EulerAncestralDiscreteScheduler",
        "DPMSolverMultistepScheduler", "DPMSolverSinglestepScheduler", "KDPM2DiscreteScheduler",
        "KDPM2AncestralDiscreteScheduler", "DEISMultistepScheduler", "UniPCMultistepScheduler",
        "DPMSolverSDEScheduler",
    ]

    /// Reads a `scheduler_config.json` for `kind`. Stable Diffusion 1.x folders ship a
    /// PNDMScheduler config: its betas serve DDIM, DDPM and PNDM alike. Keys of other
    /// schedulers (and those `kind` lacks) are ignored, as diffusers' `from_config` does; a
    /// known key with a value duo does not implement is an error naming the file, the
    /// key, what was expected and what was found.
    public init(contentsOf path: String, for kind: SchedulerKind) throws {
        let file = try ConfigFile(path: path)
        try file.require("_class_name", in: Self.compatibleClasses)
        try file.require("thresholding", equals: false)
        self.init()
        // The schedule holds a few arrays of this length: a million steps is far past any
        // model's (diffusers' are 1000) and still small.
        numTrainTimesteps = try file.size(
            "num_train_timesteps", default: numTrainTimesteps, limit: 1 << 20)
        betaStart = try Self.probability(file, "beta_start", default: betaStart)
        betaEnd = try Self.probability(file, "beta_end", default: betaEnd)
        betaSchedule = try Self.choice(file, "beta_schedule", default: betaSchedule)
        trainedBetas = try Self.trainedBetas(file, count: numTrainTimesteps)
        predictionType = try Self.choice(file, "prediction_type", default: predictionType)
        if kind == .pndm {
            try readPNDMKeys(file)
        } else {
            rescaleBetasZeroSNR = try file.bool("rescale_betas_zero_snr", default: false)
            clipSample = try file.bool("clip_sample", default: clipSample)
            clipSampleRange = try file.float("clip_sample_range", default: clipSampleRange)
            setAlphaToOne = try file.bool("set_alpha_to_one", default: setAlphaToOne)
        }
        stepsOffset = try file.int("steps_offset", default: stepsOffset)
        guard (0..<numTrainTimesteps).contains(stepsOffset) else {
            throw ModelError(
                file: path, key: "steps_offset",
                "expected 0 to \(numTrainTimesteps - 1), found \(stepsOffset)")
        }
        timestepSpacing = try Self.choice(file, "timestep_spacing", default: timestepSpacing)
        if kind == .ddpm {
            varianceType = try Self.choice(file, "variance_type", default: varianceType)
        }
    }

    /// What PNDMScheduler reads beyond the shared keys. It has no rescaling and no
    /// clipping (diffusers' class takes neither key), defaults `set_alpha_to_one` to false,
    /// and steps from ε or v only.
    private mutating func readPNDMKeys(_ file: ConfigFile) throws {
        clipSample = false
        setAlphaToOne = try file.bool("set_alpha_to_one", default: false)
        skipPrkSteps = try file.bool("skip_prk_steps", default: false)
        guard predictionType != .sample else {
            throw ModelError(
                file: file.path, key: "prediction_type",
                "PNDMScheduler steps from epsilon or v_prediction, found \"sample\"")
        }
    }

    /// One of an enumeration's raw values, or an error listing them all.
    private static func choice<Choice: RawRepresentable & CaseIterable>(
        _ file: ConfigFile, _ key: String, default fallback: Choice
    ) throws -> Choice where Choice.RawValue == String {
        try file.require(key, in: Choice.allCases.map(\.rawValue))
        return Choice(rawValue: try file.string(key, default: fallback.rawValue)) ?? fallback
    }

    /// A number in [0, 1), as a Double: diffusers computes √beta_start in double
    /// precision before rounding to float32, so reading a Float first would change it.
    private static func probability(_ file: ConfigFile, _ key: String, default fallback: Double)
        throws -> Double
    {
        guard file.has(key) else { return fallback }
        guard case .number(let text)? = file.values[key], let value = Double(text),
            value >= 0, value < 1
        else {
            throw ModelError(
                file: file.path, key: key,
                "expected a number in [0, 1), found \(describe(file.values[key]))")
        }
        return value
    }

    /// `trained_betas`: null, or one beta in [0, 1] per training timestep.
    private static func trainedBetas(_ file: ConfigFile, count: Int) throws -> [Float]? {
        let key = "trained_betas"
        guard file.has(key) else { return nil }
        let found = file.values[key]
        guard case .array(let items)? = found else {
            throw ModelError(
                file: file.path, key: key,
                "expected null or a list of numbers, found \(describe(found))")
        }
        guard items.count == count else {
            throw ModelError(
                file: file.path, key: key,
                "expected \(count) betas (num_train_timesteps), found \(items.count)")
        }
        return try items.map { item in
            // A beta of 0 or 1 leaves a timestep with no noise or no signal: the sampler
            // divides by zero there.
            guard case .number(let text) = item, let beta = Double(text), beta > 0, beta < 1
            else {
                throw ModelError(
                    file: file.path, key: key,
                    "expected betas in (0, 1), found \(describe(item))")
            }
            return Float(beta)
        }
    }

    private static func describe(_ value: JSONValue?) -> String {
        switch value {
        case .number(let text)?: return text
        case .string(let s)?: return "\"\(s)\""
        case .bool(let b)?: return String(b)
        case let other?: return "a \(other.typeName)"
        case nil: return "nothing"
        }
    }
}
