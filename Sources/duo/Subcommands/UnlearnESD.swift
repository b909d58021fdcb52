import ArgumentParser
import Concepts
import Diffusion
import Formats
import Foundation
import Unlearning

/// `duo unlearn --method esd`'s own options (its shared ones, --lr, --steps, --rank, --alpha,
/// --targets, --seed, are `Unlearn`'s).
struct ESDOptionGroup: ParsableArguments {
    @Option(
        name: .customLong("esd-preset"),
        help:
            "reference (rohitgandikota/erasing's train-esd.py, the default for real models) or the model folder's own preset (the embedded model's: world)."
    )
    var preset: String?

    @Option(
        name: .customLong("esd-prompt"),
        help:
            "The one phrase ESD erases (default: the concept file's [esd] prompt, else its first explicit word)."
    )
    var prompt: String?

    @Option(
        name: .customLong("train-method"),
        help: "noxattn (ESD-u: all but cross-attention; the default) or xattn (ESD-x).")
    var trainMethod: ESDTrainMethod?

    @Option(
        name: .customLong("esd-weights"),
        help:
            "full (the method's parameters at full rank, the reference) or lora (--rank on --targets)."
    )
    var weights: ESDWeightsChoice?

    @Option(
        name: .customLong("start-guidance"),
        help: "Guidance of the x_t sampling (default: 3, the reference's).")
    var startGuidance: Float?

    @Option(
        name: .customLong("ddim-steps"),
        help: "DDIM steps of the x_t sampling, 2 to 1000 (default: 50, the reference's).")
    var ddimSteps: Int?

    @Option(help: "ESD's negative guidance eta (default: 1, the reference's).")
    var eta: Float?

    func validate() throws {
        if let prompt, prompt.trimmingCharacters(in: .whitespaces).isEmpty {
            throw UsageError("--esd-prompt must be a phrase, got an empty string")
        }
        if let startGuidance {
            try OptionCheck.finite(startGuidance, "--start-guidance", atLeast: 0, atMost: 100)
        }
        if let ddimSteps, !(2...1000).contains(ddimSteps) {
            throw UsageError("--ddim-steps must be 2 to 1000, got \(ddimSteps)")
        }
        if let eta { try OptionCheck.finite(eta, "--eta", atLeast: -100, atMost: 100) }
    }

    /// The options given, by name (refused with --method duo).
    var given: [String] {
        [
            ("--esd-preset", preset != nil), ("--esd-prompt", prompt != nil),
            ("--train-method", trainMethod != nil), ("--esd-weights", weights != nil),
            ("--start-guidance", startGuidance != nil), ("--ddim-steps", ddimSteps != nil),
            ("--eta", eta != nil),
        ].filter(\.1).map(\.0)
    }
}

/// `--esd-weights full|lora`.
enum ESDWeightsChoice: String, ExpressibleByArgument {
    case full, lora
}

extension ESDTrainMethod: ExpressibleByArgument {}

extension Duo.Unlearn {
    /// ESD's settings: the chosen preset, the concept's phrase and the options.
    func esdSettings(concept: ConceptFile, modelDirectory: String) throws -> ESDSettings {
        var o = ESDOptions()
        o.trainMethod = esd.trainMethod
        o.lora = esd.weights.map { $0 == .lora }
        o.rank = rank
        o.alpha = alpha
        o.targets = try parsedTargets()
        o.learningRate = learningRate
        o.iterations = steps
        o.startGuidance = esd.startGuidance
        o.negativeGuidance = esd.eta
        o.ddimSteps = esd.ddimSteps
        return try ESDSettings.merged(
            modelPreset: ModelDefaults(directory: modelDirectory).esdPreset,
            preset: esd.preset, prompt: esd.prompt ?? concept.esdConceptPrompt, options: o,
            seed: seed, checkpointEvery: checkpointEvery)
    }

    /// `adapters/NAME/esd-METHOD[-lora]`.
    static func esdDirectory(_ settings: ESDSettings, concept: String) -> String {
        let suffix = settings.weights == .fullRank ? "" : "-lora"
        return "adapters/\(concept)/esd-\(settings.trainMethod.rawValue)\(suffix)"
    }

    func runESD(concept: ConceptFile, modelDirectory: String) throws {
        let settings = try esdSettings(concept: concept, modelDirectory: modelDirectory)
        let diffusion = try StableDiffusion.load(directory: modelDirectory)
        try MemoryEstimate.check(
            ESDCost.bytes(model: diffusion, settings: settings), what: "an ESD iteration")
        let directory = out ?? Self.esdDirectory(settings, concept: concept.name)
        let made = try OutputFolder.create(directory, for: "the output folder")
        defer { if made { OutputFolder.removeIfUnused(directory) } }
        let lock = try OutputFolder.lock(directory, for: "the output folder")
        defer { lock.release() }
        let identity: JSONFields = [
            ("model_sha256", .string(try StableDiffusion.weightsDigest(directory: modelDirectory)))
        ]
        let trainer = try ESDTrainer(
            model: diffusion, settings: settings, directory: directory, identity: identity)
        if let conflict = try trainer.folderConflict(replacing: force || resume) {
            throw UsageError("\(directory) \(conflict)")
        }
        if !resume { trainer.clearEarlierRun() }
        RunTimeNote.announce(
            "duo unlearn --method esd: \(settings.iterations) iterations", model: diffusion,
            quiet: output.quiet
        ) { ESDCost.passes(settings) }
        let reached = try trainESD(trainer)
        try TrainingReport.writePlot(
            directory: directory,
            title: "\(concept.name) \(settings.trainMethod.paperName)")
        if reached < settings.iterations { throw ExitCode(130) }
        let path = try TrainingReport.writeESD(
            trainer, concept: concept.name,
            extra: [("model", .string(try modelOption.recordedName()))])
        print(path)
    }

    /// Runs the iterations with a progress line (rate, ETA, loss and guidance cosine);
    /// returns the iteration reached (fewer than asked when Ctrl-C stopped it, said on the
    /// progress line).
    func trainESD(_ trainer: ESDTrainer) throws -> Int {
        Interruption.install()
        let bar = output.progress("unlearning (\(trainer.settings.trainMethod.paperName))")
        var first = true
        let reached = try trainer.train(resume: resume) { log in
            if first { bar?.startCounting(from: log.step - 1) }
            first = false
            let detail = String(
                format: "loss %.5f  cos %.2f  t %.0f", log.value("loss"),
                log.value("guidance_cosine"), log.value("timestep"))
            bar?.update(log.step, of: trainer.settings.iterations, detail: detail)
            return !Interruption.requested
        }
        if reached < trainer.settings.iterations {
            bar?.note("stopped at iteration \(reached); checkpoint written: continue with --resume")
        }
        return reached
    }
}
