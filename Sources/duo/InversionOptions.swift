import ArgumentParser
import Concepts
import Evaluation
import Unlearning

/// Textual inversion's options (`duo attack concept-inversion`), each nil where the model
/// folder's preset (the `concept-inversion` table of its `duo_defaults.json`) and else
/// Pham et al.'s `train.sh` decide.
struct InversionOptions: ParsableArguments {
    @Option(
        help:
            "The word whose embedding the token starts from (one token), or vocabulary-mean (default: the model's preset, else the concept's first explicit word; Pham et al. name one, art for styles)."
    )
    var initializer: String?

    @Option(
        help:
            "Captions: object or style templates (diffusers' learnable_property), person (Pham et al.'s), or prompts (each image's pair prompt) (default: the model's preset, else object)."
    )
    var captions: TextualInversionCaptions?

    @Option(
        help:
            "The pairs' first N unsafe images, 0 for all (default: the model's preset, else 25, Pham et al.'s)."
    )
    var images: Int?

    @Option(
        help:
            "Optimizer steps (default: the model's preset, else 5000, Pham et al.'s max_train_steps)."
    )
    var steps: Int?

    @Option(
        name: .customLong("lr"),
        help:
            "Base learning rate (default: the model's preset, else 5e-3, Pham et al.'s; --scale-lr multiplies it)."
    )
    var learningRate: Float?

    @Flag(
        inversion: .prefixedNo,
        help:
            "Multiply the rate by batch size x accumulation, as --scale_lr (default: the model's preset, else on)."
    )
    var scaleLr: Bool?

    @Option(help: "Images per micro-batch (default: the model's preset, else 4, train_batch_size).")
    var batchSize: Int?

    @Option(
        name: .customLong("grad-accum"),
        help:
            "Micro-batches per optimizer step (default: the model's preset, else 4, gradient_accumulation_steps)."
    )
    var gradientAccumulation: Int?

    @Option(help: "AdamW's weight decay (default: the model's preset, else 1e-2, the script's).")
    var weightDecay: Float?

    @Option(
        name: .customLong("flip-p"),
        help:
            "Probability of a horizontal flip (default: the model's preset, else 0.5, the script's)."
    )
    var flipP: Float?

    func validate() throws {
        for (value, name) in [
            (steps, "--steps"), (batchSize, "--batch-size"), (gradientAccumulation, "--grad-accum"),
        ] {
            if let value, value < 1 { throw UsageError("\(name) must be at least 1, got \(value)") }
        }
        if let images, images < 0 {
            throw UsageError("--images must be 0 (all) or more, got \(images)")
        }
        if let learningRate { try OptionCheck.finite(learningRate, "--lr", above: 0) }
        if let weightDecay { try OptionCheck.finite(weightDecay, "--weight-decay", atLeast: 0) }
        if let flipP { try OptionCheck.finite(flipP, "--flip-p", atLeast: 0, atMost: 1) }
        if let initializer, initializer.isEmpty || initializer.contains(where: \.isWhitespace) {
            throw UsageError(
                "--initializer must be one word or vocabulary-mean, got \(initializer.debugDescription)"
            )
        }
    }

    /// The reference's settings, the model's preset over them, these options over both.
    func settings(concept: ConceptFile, defaults: ModelDefaults) throws
        -> ConceptInversion.Settings
    {
        guard
            let word = initializer ?? defaults.conceptInversion.initializerToken
                ?? concept.explicitWords.first
        else {
            throw UsageError("\(concept.path): no explicit word to start from: give --initializer")
        }
        var settings = ConceptInversion.Settings(initializer: .word(word))
            .applying(defaults.conceptInversion)
        settings.initializer = ConceptInversion.Initializer(word)
        settings.captions = captions ?? settings.captions
        settings.numTrainImages = images ?? settings.numTrainImages
        settings.maxTrainSteps = steps ?? settings.maxTrainSteps
        settings.learningRate = learningRate ?? settings.learningRate
        settings.scaleLR = scaleLr ?? settings.scaleLR
        settings.trainBatchSize = batchSize ?? settings.trainBatchSize
        settings.gradientAccumulationSteps =
            gradientAccumulation ?? settings.gradientAccumulationSteps
        settings.adamWeightDecay = weightDecay ?? settings.adamWeightDecay
        settings.flipP = flipP ?? settings.flipP
        return settings
    }

    /// The options that give `settings`.
    static func describe(_ settings: ConceptInversion.Settings) -> String {
        "--initializer \(settings.initializer.description) --captions \(settings.captions.rawValue) "
            + "--images \(settings.numTrainImages) --steps \(settings.maxTrainSteps) "
            + "--lr \(settings.learningRate) \(settings.scaleLR ? "--scale-lr" : "--no-scale-lr") "
            + "--batch-size \(settings.trainBatchSize) --grad-accum \(settings.gradientAccumulationSteps) "
            + "--weight-decay \(settings.adamWeightDecay) --flip-p \(settings.flipP)"
    }
}

extension TextualInversionCaptions: ExpressibleByArgument {}
