import ArgumentParser
import Concepts
import Diffusion
import Evaluation
import Foundation
import Unlearning

extension UnlearnDiffAttack.Vocabulary: ExpressibleByArgument {}

extension Duo {
    /// `duo attack unlearndiff`.
    struct UnlearnDiffCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: GeneratedAttackSet.unlearnDiff,
            abstract:
                "UnlearnDiffAtk (Zhang et al., ECCV 2024): a white-box prefix attack on an unlearned model.",
            discussion: """
                As the authors' code runs it: for each of the first --count prompts of \
                --targets, --prefix tokens, each a probability vector over the vocabulary, \
                are optimized so that the model with --adapter, prompted with prefix + \
                prompt, denoises the ORIGINAL model's image of the prompt (at the prompt's \
                seed) well: a token drawn per position, the gradient straight through the \
                draw, Adam, a projection back onto the simplex. --iterations at each of \
                --timesteps timesteps in turn; after each timestep the most likely prefix is \
                drawn at the prompt's seed and guidance and the detector asked; the attack \
                stops at the first image that shows the concept (the prompt alone is tried \
                first). Writes a CSV prompt set with each prompt's seed and guidance, so that \
                duo eval --seeds 1 draws the images the attack judged and its attack success \
                rate is the attack's, per prompt. A rerun goes on after the prompts the file \
                already holds. Defaults are the reference's (images drawn with the model \
                folder's scheduler and duo's noise, where the reference uses LMS and torch's), \
                except where the model folder's duo_defaults.json says otherwise (the \
                embedded model: --iterations 8, a check after every 8).
                """)

        @OptionGroup var attacked: AttackedModel

        @Option(
            help:
                "Prompts to attack, a prompt set (text, or CSV with evaluation_seed and evaluation_guidance as UnlearnDiffAtk's prompts/nudity.csv; the first --count rows; default: the concept file's explicit set)."
        )
        var targets: String?

        @Option(help: "Prefix tokens (UnlearnDiffAtk's k, 5).")
        var prefix = UnlearnDiffAttack.Settings().prefixLength

        @Option(
            help:
                "Timesteps visited in turn, spread over the schedule (default: the model folder's duo_defaults.json, else 50, UnlearnDiffAtk's 10, 30, ..., 990)."
        )
        var timesteps: Int?

        @Option(
            help:
                "Attack iterations at each timestep (default: the model folder's duo_defaults.json, else 40, UnlearnDiffAtk's)."
        )
        var iterations: Int?

        @Option(name: .customLong("lr"), help: "Adam's learning rate (UnlearnDiffAtk's 0.01).")
        var learningRate = UnlearnDiffAttack.Settings().learningRate

        @Option(help: "Adam's weight decay, added to the gradient (UnlearnDiffAtk's 0.1).")
        var weightDecay = UnlearnDiffAttack.Settings().weightDecay

        @Option(
            help:
                "Tokens a prefix may use: all (every id, UnlearnDiffAtk's) or words (whole words, the concept's words and synonyms left out)."
        )
        var vocabulary = UnlearnDiffAttack.Settings().vocabulary

        @Option(
            help:
                "Steps of the original model's image of each prompt (UnlearnDiffAtk's data script: 25, at guidance 7.5)."
        )
        var imageSteps = 25

        @Option(
            help:
                "Steps of the success check's images: give duo eval the same --steps (UnlearnDiffAtk's 50)."
        )
        var checkSteps = 50

        @OptionGroup var detectorOptions: DetectorOptions

        @OptionGroup var attackSet: AttackSetOptions

        /// The original model's image guidance (`generate_dataset.py` l.11, 157).
        static let imageGuidance: Float = 7.5

        func validate() throws {
            guard prefix >= 1, timesteps ?? 1 >= 1, iterations ?? 1 >= 1, imageSteps >= 1,
                checkSteps >= 1, attackSet.count >= 1
            else {
                throw UsageError(
                    "--prefix, --timesteps, --iterations, --image-steps, --check-steps and --count must be at least 1"
                )
            }
            try OptionCheck.finite(learningRate, "--lr", above: 0)
            try OptionCheck.finite(weightDecay, "--weight-decay", atLeast: 0)
        }

        func run() throws {
            let conceptFile = try attacked.conceptOption.load()
            let destination = try Attack.destination(
                attackSet.out, set: GeneratedAttackSet.unlearnDiff, concept: conceptFile,
                fileExtension: "csv")
            guard PromptSetFile.isTable(destination) else {
                throw UsageError(
                    "\(attackSet.out == nil ? "the unlearndiff set's file" : "--out") \(destination): UnlearnDiffAtk writes a CSV prompt set (each prompt's seed and guidance); give a .csv path"
                )
            }
            let (targetList, cases) = try readTargets(conceptFile)
            let modelDirectory = try attacked.modelOption.directory()
            let settings = try settings(ModelDefaults(directory: modelDirectory))
            let command = commandLine(settings)
            var rows = try UnlearnDiffPromptSet.finished(
                destination, command: command, targets: targetList)
            let world = try ConceptWorld(for: conceptFile)
            let detector = try world.detector(conceptFile, options: detectorOptions)
            let threshold = detectorOptions.applied(to: conceptFile).detector.threshold
            if let note = DetectorOptions.thresholdNote(detector, threshold: threshold),
                !attackSet.output.quiet
            {
                FileHandle.standardError.write(Data((note + "\n").utf8))
            }
            if rows.count < targetList.count {
                try attackRest(
                    of: targetList, cases: cases, after: &rows, settings: settings,
                    modelDirectory: modelDirectory, detector: detector, threshold: threshold,
                    forbidden: conceptFile.explicitWords + conceptFile.synonyms,
                    record: {
                        try UnlearnDiffPromptSet.write($0, command: command, to: destination)
                    }
                )
            }
            let succeeded = rows.filter(\.outcome.success).count
            FileHandle.standardError.write(
                Data(
                    String(
                        format:
                            "unlearndiff: %d of %d prompts brought the concept back (attack success rate %.1f%%)\n",
                        succeeded, rows.count, 100 * Double(succeeded) / Double(rows.count)
                    ).utf8))
            print(destination)
        }

        /// Attacks the targets after `rows`, appending a row for each and handing every
        /// longer list to `record`: the original model draws each prompt's image first, then
        /// the adapter is merged for the attack.
        func attackRest(
            of targets: [UnlearnDiffAttack.Target], cases: [String],
            after rows: inout [UnlearnDiffPromptSet.Row], settings: UnlearnDiffAttack.Settings,
            modelDirectory: String, detector: ConceptDetector, threshold: Double,
            forbidden: [String],
            record: ([UnlearnDiffPromptSet.Row]) throws -> Void
        ) throws {
            let remaining = Array(targets[rows.count...])
            let diffusion = try StableDiffusion.load(directory: modelDirectory)
            // Read now, so that a bad adapter fails before the images are drawn.
            let adapters = try LoRAFile.load(
                attacked.adapters(), into: diffusion.unet, textEncoder: diffusion.textEncoder)
            adapters.detach(from: diffusion.unet)
            let attack = try UnlearnDiffAttack(
                model: diffusion, forbidden: forbidden, settings: settings)
            let imagesBar = attackSet.output.progress("unlearndiff: the original's images")
            let images = try UnlearnDiffImages.originals(
                model: diffusion, targets: remaining, steps: imageSteps,
                guidance: Self.imageGuidance
            ) { imagesBar?.update($0, of: remaining.count) }
            try adapters.merge(into: diffusion.unet)
            let check = UnlearnDiffImages.Check(
                model: diffusion, detector: detector, threshold: threshold, steps: checkSteps)
            let budget = settings.timesteps * settings.iterations
            let bar = attackSet.output.progress("unlearndiff")
            for (offset, target) in remaining.enumerated() {
                let i = rows.count
                let outcome = try attack.attack(
                    target, image: images[offset], index: UInt64(i),
                    succeeds: { try check($0, target) }
                ) { done, loss in
                    bar?.update(
                        offset * budget + done, of: remaining.count * budget,
                        detail: String(
                            format: "prompt %d/%d  iteration %d/%d  loss %.4f", i + 1,
                            targets.count, done, budget, loss))
                }
                rows.append(.init(target: target, caseNumber: cases[i], outcome: outcome))
                try record(rows)
                bar?.update((offset + 1) * budget, of: remaining.count * budget)
            }
        }

        /// The first --count rows of --targets, else of the concept file's explicit set, as
        /// targets (a row without a seed is drawn at --seed, the reference's `eval_seed` 0; without
        /// guidance at 7.5, `datasets.py` l.64–65), and each row's case number.
        func readTargets(_ conceptFile: ConceptFile) throws -> (
            [UnlearnDiffAttack.Target], [String]
        ) {
            guard
                let path = targets
                    ?? conceptFile.attackSets.first(where: { $0.name == "explicit" })?.path
            else {
                throw UsageError(
                    "\(conceptFile.path) names no explicit set ([attacks] explicit): give the prompts to attack with --targets FILE"
                )
            }
            let rows = try PromptSetFile.rows(path).rows.prefix(attackSet.count)
            let targets = rows.map { row in
                UnlearnDiffAttack.Target(
                    prompt: row.prompt, seed: row.seed ?? attackSet.seed,
                    guidance: row.guidance ?? 7.5, height: row.height, width: row.width)
            }
            return (targets, rows.enumerated().map { $1.caseNumber ?? String($0) })
        }

        /// The attack's settings: the options, else the model folder's defaults, else the
        /// reference's.
        func settings(_ defaults: ModelDefaults) -> UnlearnDiffAttack.Settings {
            var settings = UnlearnDiffAttack.Settings()
            settings.prefixLength = prefix
            settings.timesteps = timesteps ?? defaults.unlearnDiffTimesteps ?? settings.timesteps
            settings.iterations =
                iterations ?? defaults.unlearnDiffIterations ?? settings.iterations
            settings.learningRate = learningRate
            settings.weightDecay = weightDecay
            settings.vocabulary = vocabulary
            settings.seed = attackSet.seed
            return settings
        }

        /// The attack as its file records it: every setting that changes a row (not
        /// --count, which only says how many rows, nor --out or --quiet).
        func commandLine(_ s: UnlearnDiffAttack.Settings) -> String {
            let options: [(String, String?)] = [
                ("--concept", attacked.conceptOption.concept),
                ("--adapter", attacked.adapterDescription),
                ("--model", attacked.modelOption.model ?? "embedded"),
                ("--targets", targets), ("--prefix", "\(s.prefixLength)"),
                ("--timesteps", "\(s.timesteps)"), ("--iterations", "\(s.iterations)"),
                ("--lr", "\(s.learningRate)"), ("--weight-decay", "\(s.weightDecay)"),
                ("--vocabulary", s.vocabulary.rawValue), ("--image-steps", "\(imageSteps)"),
                ("--check-steps", "\(checkSteps)"), ("--seed", "\(s.seed)"),
                ("--detector", detectorOptions.detector),
                ("--detector-threshold", detectorOptions.detectorThreshold.map { "\($0)" }),
            ]
            return
                (["duo attack unlearndiff"]
                + options.compactMap { name, value in value.map { "\(name) \($0)" } })
                .joined(separator: " ")
        }
    }

    /// What `duo attack unlearndiff` attacks: the concept, the model and the adapter.
    struct AttackedModel: ParsableArguments {
        @OptionGroup var conceptOption: ConceptOption

        @Option(
            help:
                "The unlearned model's adapter (from duo unlearn) as PATH or PATH@SCALE; repeat to attack several stacked."
        )
        var adapter: [String]

        @OptionGroup var modelOption: ModelOption

        /// The adapters, stacked.
        func adapters() throws -> [AdapterFile] {
            guard !adapter.isEmpty else {
                throw UsageError("give the unlearned model's adapter with --adapter")
            }
            return try adapter.map { try AdapterSpec.parse($0, option: "--adapter") }
        }

        /// How the prompt file names the adapters.
        var adapterDescription: String { adapter.joined(separator: " + ") }
    }
}
