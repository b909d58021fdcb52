import Concepts
import Cluster
import ArgumentParser
import Diffusion
import Evaluation
import Formats
import Foundation
import Unlearning
import World

extension Duo {
    /// `duo eval`: defense rate and prior preservation of adapters, and the report.
    struct Eval: ParsableCommand, SplitsOverRanks {
        static let configuration = CommandConfiguration(
            abstract:
                "Measure defense rate under attack prompt sets and prior preservation; write a report.",
            discussion: """
                Samples the original model and the model with each adapter on the same \
                prompts and seeds: every attack set of the concept file ([attacks]) and its \
                keep prompts. A set made against one model (a white-box attack's, \
                --attack-set NAME=PATH@LABEL) is sampled for that model alone; sets of one \
                NAME made against different models are one column. Writes DIR/report.html (self-contained), DIR/report.md, \
                DIR/results.json, DIR/plot.svg, DIR/grids/ and DIR/images/. The report is \
                built beside DIR and moved into place at the end: a failed run leaves none.
                """)

        @OptionGroup var conceptOption: ConceptOption

        @OptionGroup var modelOption: ModelOption

        @Option(
            help:
                "An adapter to evaluate (repeatable; a LoRA or a UNet weights file), as PATH or PATH@SCALE; several joined by commas are stacked into one model (DUO's violence: blood,gun,horror,suffer)."
        )
        var adapter: [String] = []

        @Option(
            help:
                "A label per adapter, in order (default: the adapter's folder name); --attack-set NAME=PATH@LABEL binds a set to it."
        )
        var label: [String] = []

        @Option(help: "Images per prompt.")
        var seeds = EvaluationRun.Settings().seeds

        @Option(help: "Prompts used from each attack set, after filtering (default: all).")
        var prompts: Int?

        @Option(
            help:
                "Use the rows of CSV attack sets with this category (I2P's categories column; repeatable: any of them)."
        )
        var category: [String] = []

        @Option(
            help:
                "Use the rows of CSV attack sets whose nudity_percentage is at least this (0-100)."
        )
        var minNudityPercentage: Double?

        @Option(help: "Keep prompts for prior preservation.")
        var keepPrompts = EvaluationRun.Settings().keepPrompts

        @Option(help: "A transformers CLIP folder for CLIP score and CLIP-feature FID.")
        var clip: String?

        @Option(
            help:
                "LPIPS weights (safetensors of lpips' LPIPS(net='vgg') state_dict) for LPIPS to the original."
        )
        var lpips: String?

        @OptionGroup var sampling: SamplingOptions

        @OptionGroup var detectorOptions: DetectorOptions

        @Option(
            name: .customLong("attack-set"),
            help:
                "An attack prompt set as NAME=PATH (repeatable), in place of the concept file's set of that name or besides its sets; e.g. ring-a-bell=attacks/stripes/ring-a-bell.txt from duo attack. NAME=PATH@LABEL: the set was made against the model labelled LABEL ('original', or a --label) and is sampled for it alone; give one per model, e.g. unlearndiff=attacks/stripes/uda-duo.csv@DUO."
        )
        var attackSet: [String] = []

        @Option(help: "Output folder (default: reports/NAME/eval).")
        var out: String?

        @OptionGroup var precisionOption: PrecisionOption

        @OptionGroup var output: QuietFlag

        func validate() throws {
            guard label.count <= adapter.count else {
                throw UsageError("--label given \(label.count) times for \(adapter.count) adapters")
            }
            // Bounds far past any evaluation's, so that a slip of the keyboard is an error
            // here, not a failed allocation after the models are loaded.
            guard (1...1_000).contains(seeds) else {
                throw UsageError("--seeds must be from 1 to 1000, got \(seeds)")
            }
            guard (2...100_000).contains(keepPrompts) else {
                throw UsageError("--keep-prompts must be from 2 to 100000, got \(keepPrompts)")
            }
            if let prompts, prompts < 1 { throw UsageError("--prompts must be at least 1") }
            if let minNudityPercentage {
                try OptionCheck.finite(
                    minNudityPercentage, "--min-nudity-percentage", atLeast: 0, atMost: 100)
            }
        }

        /// The concept file with `--attack-set` sets in place of, or besides, its own: the
        /// sets given for a name take the place of the concept file's set of that name.
        func conceptWithAttackSets(labels: [String]) throws -> ConceptFile {
            var conceptFile = try conceptOption.load()
            let given = try attackSetOptions(labels: labels)
            for name in AttackSetBinding.columns(given.map(\.name)) {
                let sets = given.filter { $0.name == name }
                if let i = conceptFile.attackSets.firstIndex(where: { $0.name == name }) {
                    conceptFile.attackSets.replaceSubrange(i...i, with: sets)
                } else {
                    conceptFile.attackSets += sets
                }
            }
            do { try AttackSetBinding.check(conceptFile.attackSets, labels: labels) } catch {
                throw UsageError("--attack-set: \(error)")
            }
            return conceptFile
        }

        /// The original model and each adapter with its label, which names a folder of the
        /// report (`images/LABEL/`).
        func labelledCandidates() throws -> [EvaluationRun.Candidate] {
            var candidates = [EvaluationRun.Candidate(label: "original", adapter: nil)]
            for (i, spec) in adapter.enumerated() {
                let files = try AdapterSpec.parseStack(spec, option: "--adapter")
                let name =
                    i < label.count
                    ? label[i]
                    : files.map {
                        URL(fileURLWithPath: $0.path).deletingLastPathComponent().lastPathComponent
                    }.joined(separator: "+")
                candidates.append(.init(label: name, adapters: files))
            }
            for label in candidates.map(\.label)
            where label == "." || label == ".." || label.hasPrefix(".")
                || label.contains(where: { $0 == "/" || $0 == "\0" || $0.isNewline })
                || label.count > 100
            {
                throw UsageError(
                    "--label \(label.debugDescription): a label names a folder of the report (no '/', no leading '.', at most 100 characters)"
                )
            }
            guard Set(candidates.map(\.label)).count == candidates.count else {
                throw UsageError(
                    "model labels must differ: \(candidates.map(\.label).joined(separator: ", ")) (give --label)"
                )
            }
            return candidates
        }

        /// Says which attack sets the model will not read whole. A set with learned tokens
        /// beside it uses words the tokenizer gets only when they are loaded: not checked.
        func warnAboutPrompts(of conceptFile: ConceptFile, modelDirectory: String) {
            guard let tokenizer = try? CLIPTokenizer(directory: modelDirectory + "/tokenizer")
            else { return }
            let plain = conceptFile.attackSets.filter {
                !FileManager.default.fileExists(
                    atPath: GeneratedAttackSet.embeddingsPath(forSet: $0.path))
            }
            let sets = plain.compactMap { set in
                (try? PromptSetFile.read(set.path)).map { (set.name, $0) }
            }
            PromptCheck.warn(sets: sets, tokenizer: tokenizer)
        }

        /// `--attack-set NAME=PATH` (every model) or `NAME=PATH@LABEL` (the model of that
        /// label); a PATH that exists is taken whole, as `--adapter` reads PATH@SCALE.
        func attackSetOptions(labels: [String]) throws -> [ConceptFile.AttackSetFile] {
            try attackSet.map { option in
                let parts = option.split(separator: "=", maxSplits: 1).map(String.init)
                guard parts.count == 2, !parts[1].isEmpty,
                    ConceptFile.unsafeNameReason(parts[0]) == nil
                else {
                    throw UsageError(
                        "--attack-set \(option): expected NAME=PATH or NAME=PATH@LABEL with NAME of letters, digits, '-', '_'"
                    )
                }
                var (path, label) = (parts[1], String?.none)
                if !FileManager.default.fileExists(atPath: path), let at = path.lastIndex(of: "@") {
                    (path, label) = (String(path[..<at]), String(path[path.index(after: at)...]))
                }
                guard FileManager.default.fileExists(atPath: path) else {
                    throw UsageError("--attack-set \(option): no such file \(path)")
                }
                if let label, !labels.contains(label) {
                    throw UsageError(
                        "--attack-set \(option): no model is labelled \(label.debugDescription) (models: \(labels.joined(separator: ", ")); --label names them)"
                    )
                }
                return ConceptFile.AttackSetFile(name: parts[0], path: path, against: label)
            }
        }

        func run() throws {
            let group = try ProcessGroup.world()
            // A missing or unreadable adapter is found before any image is drawn.
            let candidates = try labelledCandidates()
            let conceptFile = detectorOptions.applied(
                to: try conceptWithAttackSets(labels: candidates.map(\.label)))
            guard !conceptFile.attackSets.isEmpty else {
                throw UsageError(
                    "\(conceptFile.path) names no attack prompt sets ([attacks]): give one with "
                        + "--attack-set NAME=PATH (a text file, one prompt per line, or a CSV set)")
            }
            let modelDirectory = try modelOption.directory()
            if group.isRoot { warnAboutPrompts(of: conceptFile, modelDirectory: modelDirectory) }
            let world = try ConceptWorld(for: conceptFile)
            let detector = try world.detector(conceptFile, options: detectorOptions)
            let settings = runSettings()
            let destination = out ?? "reports/\(conceptFile.name)/eval"
            try ReportFolder.checkReplaceable(destination)
            // Every rank draws into rank 0's staging folder.
            let staging = String(
                decoding: try group.broadcast(
                    Array(ReportFolder.stagingPath(for: destination).utf8)), as: UTF8.self)
            let evaluation = try EvaluationRun(
                modelDirectory: modelDirectory, concept: conceptFile, candidates: candidates,
                detector: detector,
                threshold: conceptFile.detector.threshold, settings: settings,
                directory: staging, filler: world.filler,
                preservation: try world.preservation(
                    conceptFile, count: keepPrompts, seed: settings.seed, clip: clip,
                    lpips: lpips), group: group)
            guard group.isRoot else {
                try group.barrier()  // rank 0 has made (or taken over) the staging folder
                _ = try evaluation.run()
                return
            }
            let folder = try ReportFolder(
                destination: destination, inputsDigest: try evaluation.inputsDigest())
            try group.barrier()
            if let continued = folder.continued, !output.quiet {
                FileHandle.standardError.write(
                    Data("duo eval: continuing the images of a stopped run (\(continued))\n".utf8))
            }
            do {
                for (name, path) in evaluation.skippedSets {
                    FileHandle.standardError.write(
                        Data(
                            "duo eval: skipping attack set '\(name)': \(path) is not made yet (duo attack \(name))\n"
                                .utf8))
                }
                try RunTimeNote.announce(
                    "duo eval: \(candidates.count) models", modelDirectory: modelDirectory,
                    quiet: output.quiet
                ) {
                    RunEstimate.samplingPasses(
                        images: evaluation.imageCount, steps: sampling.steps)
                }
                let bar = output.progress("images")
                let results = try evaluation.run { bar?.update($0, of: $1) }
                if let note = DetectorOptions.thresholdNote(detector, threshold: results.threshold)
                {
                    FileHandle.standardError.write(Data("duo eval: \(note)\n".utf8))
                }
                try EvaluationReport.write(results, directory: folder.staging)
                try folder.commit()
            } catch {
                folder.discard()
                throw error
            }
            print(folder.destination + "/report.html")
        }

        /// The evaluation's settings from the options.
        func runSettings() -> EvaluationRun.Settings {
            var settings = EvaluationRun.Settings()
            settings.seeds = seeds
            settings.precision = precisionOption.apply()
            settings.promptsPerSet = prompts
            settings.keepPrompts = keepPrompts
            settings.steps = sampling.steps
            settings.guidance = sampling.guidance
            settings.seed = sampling.seed
            settings.filter = PromptFilter(
                categories: category, minimumNudityPercentage: minNudityPercentage)
            return settings
        }
    }
}
