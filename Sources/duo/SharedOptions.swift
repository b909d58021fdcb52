import Concepts
import ArgumentParser
import Diffusion
import Tensor
import Unlearning
import World

// The options several subcommands take, declared once (`@OptionGroup`).

/// `--concept NAME|PATH`.
struct ConceptOption: ParsableArguments {
    @Option(
        help:
            "A concept name (concepts/NAME.toml here, else a concept file that ships with duo) or the path of a concept file."
    )
    var concept: String

    /// The concept file it names (`Lookup.concept`).
    func load() throws -> ConceptFile { try Lookup.concept(concept) }
}

/// `--model DIR`.
struct ModelOption: ParsableArguments {
    @Option(
        help:
            "A diffusers model folder (model_index.json, unet/, text_encoder/, ...; default: the embedded model)."
    )
    var model: String?

    /// The model folder: the option, or the embedded model's.
    func directory() throws -> String { try Lookup.model(model) }

    /// How manifests and adapters name the model: "embedded" for the shipped model, whether
    /// --model names a copy of it or not (same weights digest), else the folder as given; so
    /// a run is the same bytes either way.
    func recordedName() throws -> String {
        guard let model else { return "embedded" }
        let shipped = try Lookup.model(nil)
        let same =
            try StableDiffusion.weightsDigest(directory: model)
            == StableDiffusion.weightsDigest(directory: shipped)
        return same ? "embedded" : model
    }
}

/// `--detector CMD` and `--detector-timeout S`, for the commands that judge images.
struct DetectorOptions: ParsableArguments {
    @Option(
        help:
            "An external detector command speaking the line protocol (detectors/README.md), instead of the concept file's [detector]."
    )
    var detector: String?

    @Option(
        help:
            "Seconds the external detector may take per image (default: the concept file's detector.timeout, else 60)."
    )
    var detectorTimeout: Double?

    @Option(
        help:
            "A score above it means an image shows the concept (default: the concept file's detector.threshold, else 0.5)."
    )
    var detectorThreshold: Double?

    func validate() throws {
        if let detectorTimeout {
            try OptionCheck.finite(detectorTimeout, "--detector-timeout", above: 0)
        }
        if let detectorThreshold {
            try OptionCheck.finite(detectorThreshold, "--detector-threshold", atLeast: 0, atMost: 1)
        }
    }

    /// `concept` with the timeout and threshold given here in place of its own.
    func applied(to concept: ConceptFile) -> ConceptFile {
        var concept = concept
        concept.detector.timeout = detectorTimeout ?? concept.detector.timeout
        concept.detector.threshold = detectorThreshold ?? concept.detector.threshold
        return concept
    }

    /// A note for stderr when the detector declared a threshold of its own other than the
    /// run's (a preset's, say UnlearnDiffAtk's 0.45): the numbers would not be that
    /// preset's. nil when they agree or it declared none.
    static func thresholdNote(_ detector: ConceptDetector?, threshold: Double) -> String? {
        guard let declaration = detector?.declaration, let declared = declaration.threshold,
            declared != threshold
        else { return nil }
        return "note: the detector (\(declaration.summary)) declares threshold \(declared); "
            + "this run used \(threshold) (the concept file's [detector] threshold, or "
            + "--detector-threshold)"
    }
}

/// `--quiet`.
struct QuietFlag: ParsableArguments {
    @Flag(help: "No progress output.")
    var quiet = false

    /// A progress line labelled `label`, none with `--quiet`.
    func progress(_ label: String) -> ProgressLine? { quiet ? nil : ProgressLine(label) }
}

/// What every `duo attack` writes and how: `--count`, `--seed`, `--out`, `--quiet`.
struct AttackSetOptions: ParsableArguments {
    @Option(
        help:
            "Prompts to write, one search each (the first target prompts; concept inversion: from the concept's templates)."
    )
    var count = 16

    @Option(help: "Seed of the attack's draws (population, noise, batches, prompts).")
    var seed: UInt64 = 0

    @Option(
        help:
            "Output prompt file (default: the concept file's attacks.SET, or NAME/SET.txt beside it; attacks/NAME/SET.txt for a concept that ships with duo)."
    )
    var out: String?

    @OptionGroup var output: QuietFlag

    /// The prompt file to write for `set` (`Duo.Attack.destination`): checked, its folder made.
    func destination(set: String, concept: ConceptFile) throws -> String {
        try Duo.Attack.destination(out, set: set, concept: concept)
    }
}

/// How images are drawn: `--steps`, `--guidance`, `--seed`, with diffusers' defaults.
struct SamplingOptions: ParsableArguments {
    @Option(help: "Denoising steps (diffusers' default).")
    var steps = 50

    @Option(help: "Classifier-free guidance scale (diffusers' default).")
    var guidance: Float = 7.5

    @Option(help: "Seed of the images' noise.")
    var seed: UInt64 = 0

    func validate() throws {
        guard steps >= 1 else { throw UsageError("--steps must be at least 1, got \(steps)") }
        try OptionCheck.finite(guidance, "--guidance", atLeast: 0)
    }
}

/// What a white-box attack's optimizer defaults to and what its options say.
protocol OptimizerDefaults {
    static var steps: Int { get }
    static var stepsHelp: String { get }
    static var learningRate: Float { get }
    static var learningRateHelp: String { get }
}

/// The white-box attacks' optimizer: `--steps` and `--lr`, each attack with its own defaults.
struct OptimizerOptions<Defaults: OptimizerDefaults>: ParsableArguments {
    @Option(help: ArgumentHelp(Defaults.stepsHelp))
    var steps = Defaults.steps

    @Option(name: .customLong("lr"), help: ArgumentHelp(Defaults.learningRateHelp))
    var learningRate = Defaults.learningRate

    func validate() throws {
        guard steps >= 1 else { throw UsageError("--steps must be at least 1, got \(steps)") }
        try OptionCheck.finite(learningRate, "--lr", above: 0)
    }
}

/// `--precision`: float32 throughout, or bf16 mixed precision as PyTorch's CPU autocast runs
/// it (GEMM and attention operands rounded to bfloat16, float32 sums; weights, adapters,
/// optimizer state and losses stay float32) on CPUs with AVX512-BF16.
struct PrecisionOption: ParsableArguments {
    enum Choice: String, ExpressibleByArgument, CaseIterable {
        case fp32, bf16, auto
    }

    @Option(
        help:
            "fp32; bf16: mixed precision (bfloat16 GEMM and attention operands, float32 sums, weights and losses), on a CPU with AVX512-BF16; auto: bf16 where the CPU has it. Outputs made in bf16 record it."
    )
    var precision: Choice = .fp32

    func validate() throws {
        if precision == .bf16, !BF16GEMM.isNative {
            throw UsageError(
                "--precision bf16 needs a CPU with AVX512-BF16, which this one lacks (use fp32 or auto)"
            )
        }
    }

    /// Turns mixed precision on for this process when chosen: "bf16", or nil for float32.
    func apply() -> String? {
        let mixed = precision == .bf16 || (precision == .auto && BF16GEMM.isNative)
        BLAS.mixedPrecision = mixed
        return mixed ? "bf16" : nil
    }
}
