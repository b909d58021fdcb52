import Concepts
import Evaluation
import Unlearning
import World

/// What the method gets from a model's world, chosen per concept file: the embedded
/// world's prompt filling, detector heads, pair agreement and preservation metrics when
/// the file asks for them (a placeholder in a template, or `[detector] builtin`); plain
/// prompts, an external detector and SSIM/PSNR otherwise. This is the one place the world
/// meets the method: a concept file for a real model never reaches world code.
struct ConceptWorld {
    let filler: PromptFiller
    let builtins: BuiltinDetectors?
    let pairAgreement: PairAgreement?
    private let usesWorld: Bool

    init(for concept: ConceptFile) throws {
        var builtin = false
        if case .builtin = concept.detector.kind { builtin = true }
        usesWorld = builtin || concept.hasPlaceholders
        filler = usesWorld ? WorldPrompts() : PlainPrompts()
        builtins = usesWorld ? WorldDetectors() : nil
        pairAgreement = usesWorld ? WorldPairAgreement() : nil
        try filler.check(concept)
    }

    /// Whether `--detector` or the concept file names a detector (or the world has one of
    /// the concept's name).
    func namesDetector(_ concept: ConceptFile, options: DetectorOptions) -> Bool {
        if options.detector != nil || builtins != nil { return true }
        if case .unspecified = concept.detector.kind { return false }
        return true
    }

    /// The detector `--detector` names, else the one the concept file names; `otherwise`
    /// ends the error when there is none (what else the command could do).
    func detector(_ concept: ConceptFile, options: DetectorOptions, otherwise: String = "")
        throws -> ConceptDetector
    {
        let concept = options.applied(to: concept)
        if let command = options.detector {
            return try DetectorProcess(
                command: command, timeout: concept.detector.timeout,
                environment: concept.detectorEnvironment)
        }
        guard namesDetector(concept, options: options) else {
            throw UsageError(
                "\(concept.path) names no detector: give one with --detector \"CMD\" "
                    + "(a program speaking the line protocol of detectors/README.md)\(otherwise)")
        }
        return try concept.makeDetector(builtins: builtins)
    }

    /// The preservation metrics for `duo eval`'s keep prompts (`count` from `seed`), CLIP's
    /// from the transformers CLIP folder `clip` and LPIPS from the weights file `lpips` when
    /// given. Without them, a real model's report says what was not measured; the world has
    /// its own FID and feature distance.
    func preservation(
        _ concept: ConceptFile, count: Int, seed: UInt64, clip: String?, lpips: String?
    ) throws -> [PreservationMetric] {
        var metrics: [PreservationMetric] = [PixelSimilarity()]
        if usesWorld, let world = WorldPreservation(concept: concept, count: count, seed: seed) {
            metrics.insert(world, at: 0)
        }
        if let clip {
            let prompts = try filler.keepPrompts(concept, count: count, seed: seed)
            metrics.append(try CLIPPreservation(folder: clip, prompts: prompts))
        } else if !usesWorld {
            metrics.append(
                PreservationNote(
                    "No CLIP folder given (--clip): CLIP score and CLIP-FID not measured."))
        }
        if let lpips {
            metrics.append(try LPIPSPreservation(weights: lpips))
        } else if !usesWorld {
            metrics.append(
                PreservationNote(
                    "No LPIPS weights given (--lpips): LPIPS to original not measured."))
        }
        return metrics
    }
}
