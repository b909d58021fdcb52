import ArgumentParser
import Cluster
import Diffusion
import Formats
import Foundation
import Unlearning
import World

extension Duo {
    /// `duo synthesize`: SDEdit (unsafe, safe) image pairs for a concept.
    struct Synthesize: ParsableCommand, SplitsOverRanks {
        static let configuration = CommandConfiguration(
            abstract: "Make (unsafe, safe) image pairs for a concept by SDEdit.",
            discussion: """
                Pair i draws an image from an unsafe prompt, then edits it (img2img at \
                --strength) towards its safe prompt with the unsafe prompt as negative \
                prompt. With the filter on, draws the detector disagrees with are made again \
                from the next sub-seed. Writes DIR/unsafe/*.png, DIR/safe/*.png, \
                DIR/manifest.jsonl, DIR/contact-sheet.png and DIR/summary.json. Pair i \
                depends only on the settings and i: a stopped run continues where it was \
                and gives the same files. Defaults not given here come from the concept \
                file's [synthesis] table. The detector is --detector, else the concept \
                file's; with --no-filter a concept file that names none needs none (its pairs \
                record no scores).
                """)

        @OptionGroup var conceptOption: ConceptOption

        @OptionGroup var modelOption: ModelOption

        @Option(help: "Pairs to keep (default: the concept file's synthesis.pairs).")
        var count: Int?

        @Option(help: "SDEdit strength in (0, 1] (default: the concept file's synthesis.strength).")
        var strength: Double?

        @Option(help: "Denoising steps (default: the concept file's synthesis.steps).")
        var steps: Int?

        @Option(
            help: "Classifier-free guidance scale (default: the concept file's synthesis.guidance)."
        )
        var guidance: Float?

        @Option(
            help:
                "Guidance of the unsafe draws where it differs from the edit's (default: the concept file's synthesis.unsafe_guidance, else --guidance)."
        )
        var unsafeGuidance: Float?

        @Option(
            help:
                "The edit's sampler, ddim, ddpm or pndm (default: the concept file's synthesis.edit_scheduler, else the model folder's own)."
        )
        var editScheduler: String?

        @OptionGroup var detectorOptions: DetectorOptions

        @Option(help: "Seed: pair i depends only on it and i.")
        var seed: UInt64 = 0

        @Option(help: "Output folder (default: pairs/NAME).")
        var out: String?

        @Flag(
            inversion: .prefixedNo,
            help:
                "Keep only pairs whose unsafe image shows the concept and safe image does not (--no-filter: keep every first draw; a detector the concept file or --detector names still scores them, and none is needed)."
        )
        var filter = true

        @Option(help: "Draws per side and pair before giving up on a pair.")
        var maxDraws = 20

        @Option(help: "Pairs made together (one batch through the model).")
        var batchSize = 16

        @Flag(help: "Start the output folder over, even if it was made with other settings.")
        var force = false

        @OptionGroup var precisionOption: PrecisionOption

        @OptionGroup var output: QuietFlag

        func validate() throws {
            if let count, count < 1 { throw UsageError("--count must be at least 1, got \(count)") }
            if let strength { try OptionCheck.finite(strength, "--strength", above: 0, atMost: 1) }
            if let steps, steps < 1 { throw UsageError("--steps must be at least 1, got \(steps)") }
            if let guidance { try OptionCheck.finite(guidance, "--guidance", atLeast: 0) }
            if let unsafeGuidance {
                try OptionCheck.finite(unsafeGuidance, "--unsafe-guidance", atLeast: 0)
            }
            if let editScheduler, SchedulerKind(shortName: editScheduler) == nil {
                throw UsageError(
                    "--edit-scheduler must be ddim, ddpm or pndm, got \(editScheduler)")
            }
            guard batchSize >= 1 else {
                throw UsageError("--batch-size must be at least 1, got \(batchSize)")
            }
            guard maxDraws >= 1 else {
                throw UsageError("--max-draws must be at least 1, got \(maxDraws)")
            }
        }

        func run() throws {
            let group = try ProcessGroup.world()
            let conceptFile = detectorOptions.applied(to: try conceptOption.load())
            let modelDirectory = try modelOption.directory()
            let diffusion = try StableDiffusion.load(directory: modelDirectory)
            let world = try ConceptWorld(for: conceptFile)
            // With the filter off a detector only records scores: a concept with none (DUO's
            // violence data has no detector loop) goes without.
            let detector =
                filter || world.namesDetector(conceptFile, options: detectorOptions)
                ? try world.detector(
                    conceptFile, options: detectorOptions,
                    otherwise: ", or make the pairs unfiltered and unscored with --no-filter")
                : nil
            var settings = PairSettings(
                concept: conceptFile, model: try modelOption.recordedName(),
                weightsDigest: try StableDiffusion.weightsDigest(directory: modelDirectory),
                detector: detector?.identity ?? "none", threshold: conceptFile.detector.threshold)
            settings.count = count ?? settings.count
            settings.strength = strength ?? settings.strength
            settings.steps = steps ?? settings.steps
            settings.guidance = guidance ?? settings.guidance
            settings.unsafeGuidance = unsafeGuidance ?? settings.unsafeGuidance
            settings.precision = precisionOption.apply()
            settings.editScheduler = editScheduler ?? settings.editScheduler
            settings.seed = seed
            settings.filter = filter
            settings.maxDraws = maxDraws
            settings.batchSize = batchSize
            let directory = out ?? "pairs/\(conceptFile.name)"
            // Rank 0 owns the folder; the other ranks write their batches' images into it.
            let made = try group.isRoot && OutputFolder.create(directory, for: "the pairs folder")
            defer { if made { OutputFolder.removeIfUnused(directory) } }
            let lock =
                group.isRoot ? try OutputFolder.lock(directory, for: "the pairs folder") : nil
            defer { lock?.release() }
            let pairs = SDEditPairs(
                model: diffusion, concept: conceptFile, detector: detector, settings: settings,
                directory: directory, filler: world.filler, agreement: world.pairAgreement,
                group: group)
            let quiet = output.quiet || !group.isRoot
            RunTimeNote.announce(
                "duo synthesize: \(settings.count) pairs", model: diffusion, quiet: quiet
            ) {
                // The unsafe draw, then the edit's last int(steps * strength) steps; first
                // draws only (the filter's redraws come on top).
                let editSteps = Int(Double(settings.steps) * settings.strength)
                return RunEstimate.samplingPasses(
                    images: settings.count, steps: settings.steps + editSteps)
            }
            let bar = group.isRoot ? output.progress("pairs") : nil
            let summary: SDEditPairs.Summary
            do {
                summary = try pairs.run(force: force) { bar?.update($0, of: $1) }
            } catch {
                if group.isRoot { pairs.removeIfNoPairs() }
                throw error
            }
            guard group.isRoot else { return }
            if !output.quiet { describe(summary, on: bar) }
            if let note = DetectorOptions.thresholdNote(detector, threshold: settings.threshold) {
                FileHandle.standardError.write(Data("duo synthesize: \(note)\n".utf8))
            }
            print(directory + "/manifest.jsonl")
        }

        /// What the pairs came to: counts, the detector's reading, distances and agreement.
        func describe(_ summary: SDEditPairs.Summary, on bar: ProgressLine?) {
            let resumed = summary.resumed > 0 ? " (\(summary.resumed) from an earlier run)" : ""
            bar?.note(
                "\(summary.pairs) pairs\(resumed); unsafe draws \(summary.unsafeDraws) "
                    + "(\(summary.unsafeRejected) rejected), safe edits \(summary.safeDraws) "
                    + "(\(summary.safeRejected) rejected)")
            if let unsafe = summary.unsafeShowing, let safe = summary.safeShowing {
                bar?.note(
                    String(
                        format:
                            "the detector sees the concept in %.1f%% of unsafe and %.1f%% of safe images",
                        unsafe * 100, safe * 100))
            } else {
                bar?.note("no detector judged the pairs (--no-filter)")
            }
            // Unrelated images need two pairs at the least.
            let unrelated =
                summary.pairs < 2
                ? ""
                : String(format: ", between unrelated images %.1f", summary.unpairedDistance)
            bar?.note(
                String(format: "pixel distance within pairs %.1f", summary.pairedDistance)
                    + unrelated
                    + (summary.agreement.map {
                        "; \(summary.agreementMeasure ?? "") agree in "
                            + String(format: "%.1f%% of pairs", $0 * 100)
                    } ?? ""))
        }
    }
}
