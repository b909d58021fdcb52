import Diffusion
import Formats

/// Every setting of an ESD run (`duo unlearn --method esd`). The defaults are the reference
/// preset: rohitgandikota/erasing at b8aeab6, train-scripts/train-esd.py, line numbers below
/// (docs/reference-settings.md, "ESD").
public struct ESDSettings: Hashable, Sendable {
    /// Full-rank training of the method's parameters, as the reference; or a LoRA.
    public enum Weights: Hashable, Sendable {
        case fullRank
        case lora(rank: Int, alpha: Float, targets: Set<LoRATarget>)

        public var name: String {
            if case .fullRank = self { return "full" }
            return "lora"
        }
    }

    /// The preset the settings started from: "reference" or a model folder's own.
    public var preset = "reference"
    /// The concept phrase the model is prompted with (l.295, `--prompt`, one phrase).
    public var prompt: String
    /// `--train_method` (l.296); ESD-u, the paper's setting for nudity.
    public var trainMethod = ESDTrainMethod.noxattn
    public var weights = Weights.fullRank
    /// Adam's rate (l.210, 300), constant, with no weight decay and no clipping.
    public var learningRate: Float = 1e-5
    /// Iterations of one x_t each: batch 1 (l.216, 299).
    public var iterations = 1000
    /// Classifier-free guidance of the x_t sampling (l.237, 297).
    public var startGuidance: Float = 3
    /// η of the negative-guidance target (l.247, 298).
    public var negativeGuidance: Float = 1
    /// DDIM steps of the x_t sampling, and the number of t_enc bins (l.307; η 0, l.158).
    public var ddimSteps = 50
    public var seed: UInt64 = 0
    public var checkpointEvery = 100

    public init(prompt: String) { self.prompt = prompt }

    /// The settings in a fixed order: config.json and the checkpoint's metadata (a resume
    /// with other settings is refused).
    public var fields: JSONFields {
        var fields: JSONFields = [
            ("method", .string("esd")), ("esd_preset", .string(preset)),
            ("prompt", .string(prompt)), ("train_method", .string(trainMethod.rawValue)),
            ("weights", .string(weights.name)),
        ]
        if case .lora(let rank, let alpha, let targets) = weights {
            let names = LoRATarget.allCases.filter(targets.contains).map(\.rawValue)
            fields += [
                ("rank", .number(rank)), ("alpha", .number(shortest: alpha)),
                ("targets", .array(names.map(JSONValue.string))),
            ]
        }
        return fields + [
            ("optimizer", .string("adam")), ("learning_rate", .number(shortest: learningRate)),
            ("iterations", .number(iterations)), ("batch_size", .number(1)),
            ("start_guidance", .number(shortest: startGuidance)),
            ("negative_guidance", .number(shortest: negativeGuidance)),
            ("ddim_steps", .number(ddimSteps)), ("ddim_eta", .number(0)),
            ("seed", .number(String(seed))),
        ]
    }
}
