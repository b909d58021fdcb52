import ArgumentParser
import Cluster
import Concepts
import Diffusion
import Formats
import Foundation
import Unlearning
import World

extension Duo {
    /// `duo unlearn`: trains a LoRA that removes a concept (DUO, or the ESD baseline).
    struct Unlearn: ParsableCommand, SplitsOverRanks {
        static let configuration = CommandConfiguration(
            abstract:
                "Train weights that remove a concept (DUO's LoRA, or ESD for comparison), or edit them in closed form (UCE).",
            discussion: """
                DUO: prompt-free Diffusion-DPO on the concept's SDEdit pairs (safe preferred \
                over unsafe) plus the output-preserving term, as DUO's official code computes \
                it. Writes DIR/adapter.safetensors (diffusers' LoRA format), DIR/config.json, \
                DIR/train.jsonl (one line per step), DIR/train.svg and \
                DIR/checkpoint.safetensors. Ctrl-C checkpoints and exits; --resume \
                continues to the same weights as an uninterrupted run. Defaults are \
                DUO's, except where measured for the embedded model (docs/experiments/); a concept \
                file's [unlearning] table sets its own, and the options below win over both.

                DSPO (--method dspo): DUO's recipe (pairs, LoRA, learning rate, steps, \
                output-preserving term) with DSPO's pair term in place of DPO's, as \
                huaishengzhu/DSPO's train.py computes it for SD 1.5: the safe image's \
                denoising error pulled towards beta (1 - sigma(reward margin)) times the move \
                away from the original, one timestep and noise per pair, --dspo-beta 0.001 \
                (its launcher's beta_dpo, the paper's lambda-gamma). The preserving weights \
                are DUO's divided by beta/2 (beta/4 under --convention diffusion-dpo), the \
                size of DPO's starting gradient in denoising-error gradients, so they weigh \
                against DSPO's term as DUO's weigh against DPO's; --lambda is taken as given.

                ESD (--method esd, no pairs): ESD-u (--train-method noxattn) or ESD-x \
                (xattn) as rohitgandikota/erasing's train-esd.py trains them: one concept \
                phrase ([esd] prompt, else the first explicit word; --esd-prompt), x_t from \
                the trained model's own DDIM trajectory (50 steps, guidance 3) stopped at a \
                random step, the timestep anywhere in the schedule, Adam at 1e-5 for 1000 \
                iterations, full rank: DIR/unet.safetensors holds the trained parameters' new \
                values (--adapter and --lora take it). That is the "reference" preset, the \
                default for real models. The embedded model's default is its "world" preset \
                (Sources/World/Resources/model/duo_defaults.json): \(Self.worldPresetNote) \
                --esd-preset reference runs the reference there too; options win over both.
                """)

        /// How the embedded model's ESD preset leaves the reference (its duo_defaults.json).
        static let worldPresetNote =
            "x_t sampled in 10 DDIM steps instead of 50 (t_enc bins of 100 timesteps, about a "
            + "quarter of the UNet passes); every other setting the reference's."

        @OptionGroup var conceptOption: ConceptOption

        @Option(help: "The pairs folder from duo synthesize (default: pairs/NAME; DUO only).")
        var pairs: String?

        @OptionGroup var modelOption: ModelOption

        @Option(
            help:
                "DUO, DSPO (DUO with DSPO's pair term), or a baseline for comparison: ESD (ESD-u or ESD-x, --train-method), or UCE (a closed-form edit of the cross-attention keys and values: no pairs, no training; writes a UNet weights file)."
        )
        var method: UnlearningSettings.Method = .duo

        @Option(
            name: .customLong("dspo-beta"),
            help:
                "DSPO's beta (beta_dpo in its code, lambda-gamma in the paper): the weight of the move away from the original and half the scale of the reward margin (default: 0.001, its SD 1.5 launcher's; --method dspo only)."
        )
        var dspoBeta: Float?

        @OptionGroup(title: "UCE (--method uce)") var uce: UCEOptions

        @Option(
            help:
                "DPO beta (default: 500, DUO's for nudity (1000 for violence); 125 on the embedded model; a concept file's [unlearning] beta wins)."
        )
        var beta: Float?

        @Option(
            help:
                "Weight of the output-preserving term (default: base x beta / 100 as DUO; base 1e6, DUO's, or 4e6 on the embedded model)."
        )
        var lambda: Float?

        @Option(help: "LoRA rank, 1 to 4096 (default: 32, DUO's; ESD with --esd-weights lora).")
        var rank: Int?

        @Option(help: "LoRA alpha (default: the rank, so alpha/rank = 1 as DUO).")
        var alpha: Float?

        @Option(
            help:
                "LoRA targets, comma-separated: self-attention, cross-attention, feed-forward, convs, text-encoder (default: self-attention, DUO's; on the embedded model self-attention,convs; ESD-u's LoRA: self-attention,feed-forward,convs, ESD-x's: cross-attention; text-encoder: the CLIP text encoder's attention projections, DUO and DSPO only)."
        )
        var targets: String?

        @Option(
            name: .customLong("lr"),
            help:
                "Learning rate (default: base x 100 / beta as DUO; base 3e-4, DUO's, or 1.25e-3 on the embedded model; ESD: its preset's, 1e-5 the reference's)."
        )
        var learningRate: Float?

        @Option(
            help:
                "Optimizer steps (default: 1000, DUO's; a concept file's [unlearning] steps wins; ESD: iterations, 1000)."
        )
        var steps: Int?

        @Option(help: "Pairs per micro-batch (default: 4, DUO's 1 per GPU on 4 GPUs).")
        var batchSize: Int?

        @Option(
            name: .customLong("grad-accum"), help: "Micro-batches per optimizer step (default: 1).")
        var gradientAccumulation: Int?

        @Option(help: "Linear learning-rate warm-up steps (default: 0).")
        var warmup: Int?

        @Option(
            name: .customLong("t-max"),
            help: "Training timesteps are drawn from [0, T) (default: 750, DUO's t_max).")
        var tMax: Int?

        @Option(
            help:
                "The DPO convention: duo (a timestep per image, no 1/2: DUO's code; the default) or diffusion-dpo (one per pair, beta/2)."
        )
        var convention: DPOConvention?

        @Option(
            name: .customLong("prompted-share"),
            help:
                "Share of pairs whose DPO term is conditioned on the pair's unsafe prompt and whose output-preserving term on its safe prompt (default: 0, DUO's prompt-free objective; 1 on the embedded model)."
        )
        var promptedShare: Float?

        @Option(
            name: .customLong("lambda-unconditional"),
            help:
                "Weight of the unconditional-preserving term, which holds the empty-prompt prediction on the pairs' noisy images to the original's so that guidance does not undo the adapters; needs --prompted-share 1 (default: 0, not in DUO; a concept file may set its own, as stripes does)."
        )
        var unconditionalLambda: Float?

        @Option(
            name: .customLong("fragment-share"),
            help:
                "Share of prompted pairs conditioned on a fragment of their prompts (a random subset of the words that keeps the concept's, sometimes repeated; the output-preserving term on the same words less the concept's), so that erasure holds for prompts outside the caption grammar (default: 0; a concept file may set its own)."
        )
        var fragmentShare: Float?

        @Option(
            name: .customLong("prefix-share"),
            help:
                "Share of prompted pairs conditioned on their prompts after a random prefix of 1 to 5 whole words of the tokenizer (never the concept file's; the same before both prompts), against attacks that put words before a prompt (default: 0; a concept file may set its own)."
        )
        var prefixShare: Float?

        @Option(
            name: .customLong("prefix-vocabulary"),
            help:
                "What --prefix-share's random prefixes are made of: words (whole words of the tokenizer) or tokens (any 1 to 5 tokens of the vocabulary, byte-level pieces included, decoded together as UnlearnDiffAtk writes its prompts); neither holds the concept file's words (default: words; a concept file may set its own)."
        )
        var prefixVocabulary: UnlearningSettings.PrefixVocabulary?

        @Option(
            name: .customLong("prefix-file"),
            help:
                "Prefixes an attack found, which prefixed pairs (--prefix-share) draw from instead of random words, before the unsafe prompt only: duo attack unlearndiff's CSV (each prompt less its original) or a text file with one prefix per line. Train, attack the adapter, train again with its prefixes: AdvUnlearn's loop, by hand."
        )
        var prefixFile: String?

        @Option(
            name: .customLong("adversarial-share"),
            help:
                "Share of prompted pairs whose DPO term is conditioned on their unsafe prompt after a prefix embedding that an attack inside training finds against the adapter each step (AdvUnlearn's loop: one embedding, Adam at 1e-3, warm-started from the last step's), once --attack-warmup steps have passed (default: 0; a concept file may set its own)."
        )
        var adversarialShare: Float?

        @Option(
            name: .customLong("attack-steps"),
            help: "Adam steps of each training step's attack (default: AdvUnlearn's 30).")
        var attackSteps: Int?

        @Option(
            name: .customLong("attack-warmup"),
            help: "Steps trained before the first attack (default: AdvUnlearn's 200).")
        var attackWarmup: Int?

        @OptionGroup(title: "ESD options (--method esd)") var esd: ESDOptionGroup

        @Option(help: "Seed for the adapters' init, the batches, noise and timesteps.")
        var seed: UInt64 = 0

        @Option(help: "Steps between checkpoints.")
        var checkpointEvery = 100

        @Option(help: "Output folder (default: adapters/NAME/METHOD-SETTINGS).")
        var out: String?

        @Flag(help: "Continue from the output folder's checkpoint.")
        var resume = false

        @Flag(
            help:
                "Replace another run's adapter and checkpoint in the output folder (one with other settings)."
        )
        var force = false

        @OptionGroup var precisionOption: PrecisionOption

        @Flag(
            name: .customLong("gradient-checkpointing"),
            help:
                "Keep only each resnet's and transformer's inputs in the trained passes and run them again in the backward pass (diffusers' --gradient_checkpointing): about one more forward pass of time for far less memory; what Stable Diffusion-size models need. The same adapter, to float32 rounding."
        )
        var gradientCheckpointing = false

        @OptionGroup var output: QuietFlag

        func validate() throws {
            // The same ranges as a concept file's [unlearning] keys.
            if let beta { try OptionCheck.finite(beta, "--beta", atLeast: 1e-6, atMost: 1e9) }
            if let dspoBeta {
                try OptionCheck.finite(dspoBeta, "--dspo-beta", atLeast: 0, atMost: 1e9)
            }
            if let lambda { try OptionCheck.finite(lambda, "--lambda", atLeast: 0, atMost: 1e15) }
            if let rank, !(1...4096).contains(rank) {
                throw UsageError("--rank must be 1 to 4096, got \(rank)")
            }
            if let alpha { try OptionCheck.finite(alpha, "--alpha", above: 0) }
            if let learningRate {
                try OptionCheck.finite(learningRate, "--lr", above: 0, atMost: 10)
            }
            if let steps, steps < 1 { throw UsageError("--steps must be at least 1, got \(steps)") }
            if let promptedShare {
                try OptionCheck.finite(promptedShare, "--prompted-share", atLeast: 0, atMost: 1)
            }
            if let unconditionalLambda {
                try OptionCheck.finite(unconditionalLambda, "--lambda-unconditional", atLeast: 0)
            }
            if let fragmentShare {
                try OptionCheck.finite(fragmentShare, "--fragment-share", atLeast: 0, atMost: 1)
            }
            if let prefixShare {
                try OptionCheck.finite(prefixShare, "--prefix-share", atLeast: 0, atMost: 1)
            }
            if let adversarialShare {
                try OptionCheck.finite(
                    adversarialShare, "--adversarial-share", atLeast: 0, atMost: 1)
            }
            if let attackSteps, attackSteps < 1 {
                throw UsageError("--attack-steps must be at least 1, got \(attackSteps)")
            }
            if let attackWarmup, attackWarmup < 0 {
                throw UsageError("--attack-warmup must be at least 0, got \(attackWarmup)")
            }
            if let tMax, tMax < 1 { throw UsageError("--t-max must be at least 1, got \(tMax)") }
            if let batchSize, batchSize < 1 {
                throw UsageError("--batch-size must be at least 1, got \(batchSize)")
            }
            if let gradientAccumulation, gradientAccumulation < 1 {
                throw UsageError("--grad-accum must be at least 1, got \(gradientAccumulation)")
            }
            guard warmup ?? 0 >= 0, checkpointEvery >= 1 else {
                throw UsageError("--warmup must be >= 0 and --checkpoint-every >= 1")
            }
            _ = try parsedTargets()
            try checkMethodOptions()
        }

        /// Options of the other method are refused by name, not ignored.
        func checkMethodOptions() throws {
            let duoOnly: [(String, Bool)] = [
                ("--pairs", pairs != nil), ("--beta", beta != nil), ("--lambda", lambda != nil),
                ("--batch-size", batchSize != nil), ("--grad-accum", gradientAccumulation != nil),
                ("--warmup", warmup != nil), ("--t-max", tMax != nil),
                ("--convention", convention != nil), ("--prompted-share", promptedShare != nil),
                ("--lambda-unconditional", unconditionalLambda != nil),
                ("--fragment-share", fragmentShare != nil), ("--prefix-share", prefixShare != nil),
                ("--prefix-file", prefixFile != nil),
                ("--prefix-vocabulary", prefixVocabulary != nil),
                ("--adversarial-share", adversarialShare != nil),
                ("--attack-steps", attackSteps != nil), ("--attack-warmup", attackWarmup != nil),
                ("--gradient-checkpointing", gradientCheckpointing),
            ]
            if method == .dspo, beta != nil || convention != nil {
                throw UsageError(
                    "\(beta != nil ? "--beta" : "--convention") is an option of --method duo, not dspo "
                        + "(DSPO's beta is --dspo-beta; it draws one timestep per pair and halves "
                        + "its beta in the reward margin, as its code does)")
            }
            if method != .dspo, dspoBeta != nil {
                throw UsageError(
                    "--dspo-beta is an option of --method dspo, not \(method.rawValue)")
            }
            if method == .esd || method == .uce, precisionOption.precision != .fp32 {
                throw UsageError(
                    "--precision is an option of --method duo and dspo, not \(method.rawValue) (it runs in float32)"
                )
            }
            if method == .uce, let option = duoOnly.filter(\.1).map(\.0).first {
                throw UsageError(
                    "\(option) is an option of --method duo, not uce"
                        + (option == "--pairs"
                            ? " (UCE edits the weights in closed form from the concept's words; it needs no pairs)"
                            : ""))
            }
            let (given, other) =
                method == .esd
                ? (duoOnly.filter(\.1).map(\.0), "duo")
                : (esd.given, "esd")
            if let option = given.first {
                throw UsageError(
                    "\(option) is an option of --method \(other), not \(method.rawValue)"
                        + (option == "--pairs"
                            ? " (ESD samples its own x_t; it needs no pairs)" : ""))
            }
        }

        func parsedTargets() throws -> Set<LoRATarget>? {
            guard let targets else { return nil }
            var set = Set<LoRATarget>()
            for name in targets.split(separator: ",").map({
                $0.trimmingCharacters(in: .whitespaces)
            }) {
                guard let target = LoRATarget(rawValue: name) else {
                    throw UsageError(
                        "--targets: unknown target '\(name)' (known: \(LoRATarget.names))")
                }
                set.insert(target)
            }
            guard !set.isEmpty else { throw UsageError("--targets must name at least one target") }
            return set
        }

        /// The command line's part of the settings (`UnlearningSettings.merged`).
        func options() throws -> UnlearningOptions {
            var o = UnlearningOptions()
            o.method = method
            o.beta = beta
            o.lambda = lambda
            o.rank = rank
            o.alpha = alpha
            o.targets = try parsedTargets()
            o.learningRate = learningRate
            o.steps = steps
            o.batchSize = batchSize
            o.gradientAccumulation = gradientAccumulation
            o.warmupSteps = warmup
            o.tMax = tMax
            o.convention = convention
            o.promptedShare = promptedShare
            o.unconditionalLambda = unconditionalLambda
            o.dspoBeta = dspoBeta
            o.fragmentShare = fragmentShare
            o.prefixShare = prefixShare
            o.adversarialShare = adversarialShare
            o.prefixVocabulary = prefixVocabulary
            o.attackSteps = attackSteps
            o.attackWarmupSteps = attackWarmup
            o.seed = seed
            o.checkpointEvery = checkpointEvery
            return o
        }

        /// `adapters/NAME/duo-betaB` (DSPO: `dspo-betaB`, its β).
        static func defaultDirectory(_ settings: UnlearningSettings, concept: String) -> String {
            let beta =
                Int(exactly: settings.pairBeta).map(String.init)
                ?? String(format: "%g", Double(settings.pairBeta))
            return "adapters/\(concept)/\(settings.method.rawValue)-beta\(beta)"
        }

        func run() throws {
            let group = try ProcessGroup.world()
            if group.size > 1, method == .uce || method == .esd {
                throw UsageError(
                    "mpirun splits DUO and DSPO training over ranks; --method \(method.rawValue) runs in one process (without mpirun)"
                )
            }
            if method == .uce { return try runUCE() }
            let conceptFile = try conceptOption.load()
            let modelDirectory = try modelOption.directory()
            if method == .esd {
                return try runESD(concept: conceptFile, modelDirectory: modelDirectory)
            }
            let settings = try trainingSettings(
                concept: conceptFile, modelDirectory: modelDirectory)
            let pairsDirectory = pairs ?? "pairs/\(conceptFile.name)"
            try PairData.checkMadeFor(conceptFile.name, directory: pairsDirectory)
            let pairData = try PairData(directory: pairsDirectory)
            let diffusion = try StableDiffusion.load(directory: modelDirectory)
            diffusion.unet.gradientCheckpointing = gradientCheckpointing
            // Each pair of a micro-batch is two trained rows at the least (safe and unsafe).
            try MemoryEstimate.check(
                MemoryEstimate.training(model: diffusion, rows: 2 * settings.batchSize),
                what: "a micro-batch of \(settings.batchSize) pairs")
            let directory = out ?? Self.defaultDirectory(settings, concept: conceptFile.name)
            // Rank 0 owns the folder; the other ranks only compute.
            let made = try group.isRoot && OutputFolder.create(directory, for: "the output folder")
            defer { if made { OutputFolder.removeIfUnused(directory) } }
            let lock =
                group.isRoot ? try OutputFolder.lock(directory, for: "the output folder") : nil
            defer { lock?.release() }
            let identity: JSONFields = [
                ("model", .string(try modelOption.recordedName())),
                (
                    "model_sha256",
                    .string(try StableDiffusion.weightsDigest(directory: modelDirectory))
                ),
                ("pairs", .string(pairsDirectory)),
                ("pairs_manifest_sha256", .string(pairData.manifestDigest)),
            ]
            let trainer = try UnlearningTrainer(
                model: diffusion, pairs: pairData, settings: settings, directory: directory,
                identity: identity.filter { $0.key != "model" && $0.key != "pairs" }, group: group)
            if group.isRoot, let conflict = try trainer.folderConflict(replacing: force || resume) {
                throw UsageError("\(directory) \(conflict)")
            }
            if group.isRoot, !resume { trainer.clearEarlierRun() }
            let quiet = output.quiet || !group.isRoot
            RunTimeNote.announce(
                "duo unlearn: \(settings.steps) steps", model: diffusion, quiet: quiet
            ) {
                // [unsafe, safe, prior] rows per pair, trained and reference.
                let pairs = settings.batchSize * settings.gradientAccumulation
                return RunEstimate.trainingPasses(
                    steps: settings.steps, rows: 3 * pairs, withReference: true)
            }
            Interruption.install()
            let bar = group.isRoot ? output.progress("unlearning") : nil
            let reached = try train(trainer, steps: settings.steps, bar: bar)
            guard group.isRoot else {
                if reached < settings.steps { throw ExitCode(130) }
                return
            }
            try TrainingReport.writePlot(
                directory: directory, title: "\(conceptFile.name) \(settings.method.rawValue)")
            if reached < settings.steps {
                bar?.note("stopped at step \(reached); checkpoint written: continue with --resume")
                throw ExitCode(130)
            }
            try TrainingReport.writeAdapter(
                trainer, concept: conceptFile.name,
                extra: identity.filter { $0.key == "model" || $0.key == "pairs" })
            print(directory + "/adapter.safetensors")
        }

        /// The run's settings: the model's, the concept file's and the options' (in that
        /// order of precedence, lowest first), with the prefix file and the concept words
        /// that prefixes and fragments leave out.
        func trainingSettings(concept conceptFile: ConceptFile, modelDirectory: String) throws
            -> UnlearningSettings
        {
            var settings = try UnlearningSettings.merged(
                model: ModelDefaults(directory: modelDirectory), concept: conceptFile.unlearning,
                options: options())
            settings.precision = precisionOption.apply()
            if let prefixFile {
                guard settings.prefixShare > 0 else {
                    throw UsageError(
                        "--prefix-file needs prefixed pairs: --prefix-share above 0 (and --prompted-share above 0)"
                    )
                }
                settings.prefixes = try AdversarialPrefixes.read(prefixFile)
            }
            if settings.prefixShare > 0 {
                settings.conceptWords =
                    conceptFile.explicitWords + conceptFile.synonyms + conceptFile.implicitTriggers
            } else if settings.fragmentShare > 0 {
                settings.conceptWords = conceptFile.explicitWords
            }
            return settings
        }

        /// Trains to the last step or to a Ctrl-C, showing progress on `bar`; the step reached.
        func train(_ trainer: UnlearningTrainer, steps: Int, bar: ProgressLine?) throws -> Int {
            var first = true
            return try trainer.train(resume: resume) { log in
                if first { bar?.startCounting(from: log.step - 1) }
                first = false
                let detail = String(
                    format: "loss %.4f  acc %.2f", log.value("loss"), log.value("implicit_accuracy")
                )
                bar?.update(log.step, of: steps, detail: detail)
                return !Interruption.requested
            }
        }
    }
}

// `--method duo|esd` and `--convention duo|diffusion-dpo` parse straight into the method's
// enums; ArgumentParser lists the choices in help and in errors.
extension UnlearningSettings.Method: ExpressibleByArgument {}
extension DPOConvention: ExpressibleByArgument {}
extension UnlearningSettings.PrefixVocabulary: ExpressibleByArgument {}
