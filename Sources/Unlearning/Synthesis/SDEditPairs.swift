import Cluster
import Concepts
import Diffusion
import Formats
import Foundation
import Tensor

/// `duo synthesize`: (safe, unsafe) image pairs for DUO by SDEdit, as DUO's data script
/// makes them (naver-ai/DUO, datasets/SD/generate_datasets.py). Pair i draws x₀ˡ from its
/// unsafe prompt, then edits it with img2img at the strength's timestep towards the safe
/// prompt, the unsafe prompt as the negative one, to get x₀ʷ. With the filter on, an
/// unsafe draw the detector does not see the concept in is drawn again from the next
/// sub-seed, and so is an edit that still shows it. With the filter off a detector is
/// optional (DUO's violence data has none): without one, pairs record no scores.
///
/// Pair i depends only on (settings, i): its prompts come from the filler's pair i of the
/// seed, its noise from keys folded from (seed, i, side, draw). Pairs are made a batch at a time and
/// appended to the manifest per batch; a rerun continues after the last whole batch and
/// writes the same bytes as a run that was never stopped. Under `mpirun` the ranks make
/// consecutive batches side by side, each writing its own images, and rank 0 appends them
/// to the manifest in order: the folder is the one a single process makes.
public final class SDEditPairs {
    public let model: StableDiffusion
    public let concept: ConceptFile
    /// Scores every kept image; nil: none (only with the filter off).
    public let detector: ConceptDetector?
    public let settings: PairSettings
    public let directory: String
    /// Writes the pairs' prompts from the concept file's templates.
    public let filler: PromptFiller
    /// What the model's world can tell about a pair beyond pixels (nil: nothing).
    public let agreement: PairAgreement?
    /// The ranks the batches are split over (this process alone without mpirun).
    public let group: ProcessGroup

    /// What a finished run made and how many draws it threw away.
    public struct Summary: Hashable, Sendable {
        public var pairs: Int
        public var unsafeDraws: Int
        public var unsafeRejected: Int
        public var safeDraws: Int
        public var safeRejected: Int
        /// Pairs already in the folder when this run started.
        public var resumed: Int
        /// Mean absolute pixel difference (0–255) within pairs, and between each unsafe
        /// image and the next pair's safe one: how much the edit keeps.
        public var pairedDistance: Double
        public var unpairedDistance: Double
        /// The share of pairs the world's `PairAgreement` finds alike besides the concept
        /// (nil: not measured), and what it measured.
        public var agreement: Double?
        public var agreementMeasure: String?
        /// Shares of kept unsafe and safe images the detector sees the concept in (1 and 0
        /// with the filter on; nil without a detector).
        public var unsafeShowing: Double?
        public var safeShowing: Double?
    }

    public init(
        model: StableDiffusion, concept: ConceptFile, detector: ConceptDetector?,
        settings: PairSettings, directory: String, filler: PromptFiller = PlainPrompts(),
        agreement: PairAgreement? = nil, group: ProcessGroup = .single
    ) {
        self.group = group
        self.model = model
        self.concept = concept
        self.detector = detector
        self.settings = settings
        self.directory = directory
        self.filler = filler
        self.agreement = agreement
    }

    var manifestPath: String { directory + "/manifest.jsonl" }
    var settingsPath: String { directory + "/synthesis.json" }
    public var contactSheetPath: String { directory + "/contact-sheet.png" }
    var summaryPath: String { directory + "/summary.json" }

    /// Makes the missing pairs; `progress(done, total)` after each batch.
    public func run(force: Bool = false, progress: (Int, Int) -> Void = { _, _ in }) throws
        -> Summary
    {
        if detector == nil && settings.filter {
            throw UnlearningError(
                "\(concept.path): the filter needs a detector to keep pairs by (or turn it off)")
        }
        let prompts = try filler.pairPrompts(concept, count: settings.count, seed: settings.seed)
        // The edit's schedule is checked before the folder is written: settings that leave
        // the edit no step would otherwise leave a folder that refuses the corrected run.
        var scheduler = try model.scheduler(settings.editSchedulerKind)
        try scheduler.setTimesteps(settings.steps)
        _ = try scheduler.timesteps(strength: settings.strength)
        if group.isRoot {
            try prepareFolder(force: force)
            let kept = PairManifest.read(
                manifestPath, batchSize: settings.batchSize, count: settings.count)
            try PairManifest.rewrite(kept, settings: settings, to: manifestPath)
        }
        try group.barrier()
        var records = PairManifest.read(
            manifestPath, batchSize: settings.batchSize, count: settings.count)
        let resumed = records.count
        progress(records.count, settings.count)
        while records.count < settings.count {
            // One batch per rank, the batches a single process would make next.
            let start = records.count + group.rank * settings.batchSize
            let batch = start..<min(settings.count, start + settings.batchSize)
            let made = batch.isEmpty ? [] : try makeBatch(batch, prompts: prompts)
            let round = try gathered(made)
            if group.isRoot { try PairManifest.append(round, settings: settings, to: manifestPath) }
            records += round
            progress(records.count, settings.count)
        }
        // Read back from disk: a resumed run holds only its own batches in memory.
        let unsafe = try records.map { try PNGImage(contentsOf: directory + "/" + $0.unsafeFile) }
        let safe = try records.map { try PNGImage(contentsOf: directory + "/" + $0.safeFile) }
        if group.isRoot { try writeContactSheet(unsafe: unsafe, safe: safe) }
        let (paired, unpaired, agreed) = keptStatistics(unsafe: unsafe, safe: safe)
        let summary = Summary(
            pairs: records.count, unsafeDraws: records.reduce(0) { $0 + $1.unsafeDraw + 1 },
            unsafeRejected: records.reduce(0) { $0 + $1.unsafeDraw },
            safeDraws: records.reduce(0) { $0 + $1.safeDraw + 1 },
            safeRejected: records.reduce(0) { $0 + $1.safeDraw }, resumed: resumed,
            pairedDistance: paired, unpairedDistance: unpaired, agreement: agreed,
            agreementMeasure: agreed == nil ? nil : agreement?.measure,
            unsafeShowing: showing(records.map(\.unsafeScore)),
            safeShowing: showing(records.map(\.safeScore)))
        if group.isRoot { try AtomicFile.write(summary.json, to: summaryPath) }
        return summary
    }

    /// Every rank's new records, in rank order (as manifest lines between ranks).
    func gathered(_ records: [PairRecord]) throws -> [PairRecord] {
        guard group.size > 1 else { return records }
        let lines = records.map { $0.jsonLine(settings) }.joined(separator: "\n")
        return try group.allGather(Array(lines.utf8)).flatMap { bytes in
            try String(decoding: bytes, as: UTF8.self).split(separator: "\n").map { line in
                guard let record = PairRecord(jsonLine: line) else {
                    throw UnlearningError("a rank sent a pair record that does not parse: \(line)")
                }
                return record
            }
        }
    }

    /// The share of `scores` above the threshold; nil when a pair has no score.
    func showing(_ scores: [Double?]) -> Double? {
        let known = scores.compactMap { $0 }
        guard known.count == scores.count, !known.isEmpty else { return nil }
        return Double(known.filter { $0 > settings.threshold }.count) / Double(known.count)
    }

    /// After a run that failed before its first pair (a detector that cannot read the
    /// model's images, a full disk): removes the settings file, the empty manifest and the
    /// empty image folders, so that the corrected command starts afresh instead of being
    /// refused as a run with other settings. Nothing is removed once a pair or an image is
    /// there.
    public func removeIfNoPairs() {
        let files = FileManager.default
        guard (try? PairSettings.recordedFields(settingsPath)) != nil,
            (try? String(contentsOfFile: manifestPath, encoding: .utf8))?.isEmpty == true
        else { return }
        for sub in ["unsafe", "safe"] {
            guard (try? files.contentsOfDirectory(atPath: directory + "/" + sub))?.isEmpty ?? true
            else { return }
        }
        for name in ["manifest.jsonl", "synthesis.json", "unsafe", "safe"] {
            try? files.removeItem(atPath: directory + "/" + name)
        }
    }

    /// Creates the folder and its settings file, or checks that an existing one was made
    /// with these settings (`force`: starts it over).
    func prepareFolder(force: Bool) throws {
        let files = FileManager.default
        if files.fileExists(atPath: settingsPath) {
            if force {
                for name in [
                    "manifest.jsonl", "summary.json", "contact-sheet.png", "unsafe", "safe",
                    "synthesis.json",
                ] {
                    try? files.removeItem(atPath: directory + "/" + name)
                }
            } else if let difference = settings.difference(
                from: try PairSettings.recordedFields(settingsPath))
            {
                throw UnlearningError(
                    "\(directory) \(difference): use another --out, or --force to start over")
            }
        } else if let existing = try? files.contentsOfDirectory(atPath: directory),
            existing.contains(where: { !$0.hasPrefix(".") }), !force
        {
            throw UnlearningError(
                "\(directory) exists and is not a pairs folder (no synthesis.json): use another --out, or --force"
            )
        }
        do {
            for sub in ["unsafe", "safe"] {
                try files.createDirectory(
                    atPath: directory + "/" + sub, withIntermediateDirectories: true)
            }
        } catch {
            throw UnlearningError(
                "\(directory): cannot create the output folder (\(FileProblem.reason(error)))")
        }
        try AtomicFile.write(settings.json, to: settingsPath)
    }

    /// The pairs of `batch`, their PNG files written.
    func makeBatch(_ batch: Range<Int>, prompts: [PromptPair]) throws -> [PairRecord] {
        let unsafe = try drawUntil(batch, side: 0, wanted: true) { indices, draws in
            try TextToImage.sample(
                model: model,
                requests: zip(indices, draws).map { i, draw in
                    TextToImage.Request(prompt: prompts[i].unsafe, key: key(i, side: 0, draw: draw))
                },
                steps: settings.steps, guidance: settings.drawGuidance)
        }
        let safe = try drawUntil(batch, side: 1, wanted: false) { indices, draws in
            var edit = ImageToImage.Settings()
            edit.strength = settings.strength
            edit.steps = settings.steps
            edit.guidance = settings.guidance
            edit.scheduler = settings.editSchedulerKind
            return try ImageToImage.edit(
                model: model,
                images: concat(
                    indices.map { ImageConversion.modelInput(unsafe[$0]!.image) }, axis: 0),
                prompts: indices.map { prompts[$0].safe },
                negativePrompts: indices.map { prompts[$0].unsafe },
                keys: zip(indices, draws).map { key($0, side: 1, draw: $1) }, settings: edit)
        }
        return try batch.map { i in
            let record = PairRecord(
                index: i, unsafePrompt: prompts[i].unsafe, safePrompt: prompts[i].safe,
                unsafeDraw: unsafe[i]!.draw, safeDraw: safe[i]!.draw,
                unsafeScore: unsafe[i]!.score, safeScore: safe[i]!.score,
                detector: detector?.identity ?? "none",
                detectorDeclaration: detector?.declaration)
            try unsafe[i]!.image.write(to: directory + "/" + record.unsafeFile)
            try safe[i]!.image.write(to: directory + "/" + record.safeFile)
            return record
        }
    }

    struct Draw {
        var image: PNGImage
        var score: Double?
        var draw: Int
    }

    /// Draws one side of every pair in `batch`, again (next draw index) for those whose
    /// detector verdict is not `wanted` while the filter is on, until all pass.
    func drawUntil(
        _ batch: Range<Int>, side: Int, wanted: Bool,
        make: (_ indices: [Int], _ draws: [Int]) throws -> Tensor
    ) throws -> [Int: Draw] {
        var kept: [Int: Draw] = [:]
        var pending = Array(batch)
        var draws = [Int: Int](uniqueKeysWithValues: batch.map { ($0, 0) })
        while !pending.isEmpty {
            let images = try ImageConversion.pngImages(
                try make(pending, pending.map { draws[$0]! }))
            let scores = try detector?.scores(images: images)
            var again: [Int] = []
            for (k, i) in pending.enumerated() {
                let score = scores?[k]
                if !settings.filter || (score.map { $0 > settings.threshold } == wanted) {
                    kept[i] = Draw(image: images[k], score: score, draw: draws[i]!)
                    continue
                }
                draws[i]! += 1
                guard draws[i]! < settings.maxDraws else { throw gaveUp(i, side: side) }
                again.append(i)
            }
            pending = again
        }
        return kept
    }

    func gaveUp(_ index: Int, side: Int) -> UnlearningError {
        let what =
            side == 0
            ? "no unsafe draw showed \(concept.name)"
            : "every safe edit still showed \(concept.name)"
        let hint = side == 0 ? "check the unsafe prompts and the detector" : "raise the strength"
        return UnlearningError(
            "pair \(index): \(what) in \(settings.maxDraws) draws (detector \(detector?.identity ?? "none"), "
                + "threshold \(settings.threshold)); \(hint), or use --no-filter")
    }

    /// The noise key of pair `index`'s `side` (0 unsafe, 1 safe), draw `draw`.
    func key(_ index: Int, side: Int, draw: Int) -> RandomKey {
        RandomKey(seed: settings.seed).fold(in: 0x5041_4952)  // "PAIR"
            .fold(in: UInt64(index)).fold(in: UInt64(side)).fold(in: UInt64(draw))
    }

    /// Pixel distances within and across pairs, and the world's agreement measure.
    func keptStatistics(unsafe: [PNGImage], safe: [PNGImage]) -> (Double, Double, Double?) {
        func distance(_ a: PNGImage, _ b: PNGImage) -> Double {
            zip(a.pixels, b.pixels).reduce(0.0) { $0 + abs(Double($1.0) - Double($1.1)) }
                / Double(a.pixels.count)
        }
        let n = unsafe.count
        let paired = (0..<n).reduce(0.0) { $0 + distance(unsafe[$1], safe[$1]) } / Double(n)
        let unpaired =
            n < 2
            ? paired
            : (0..<n).reduce(0.0) { $0 + distance(unsafe[$1], safe[($1 + 1) % n]) } / Double(n)
        return (paired, unpaired, agreement?.agreement(unsafe: unsafe, safe: safe))
    }

    /// 16 pairs per block, unsafe images above their safe edits.
    func writeContactSheet(unsafe: [PNGImage], safe: [PNGImage]) throws {
        let perRow = min(16, unsafe.count)
        var cells: [PNGImage] = []
        for start in stride(from: 0, to: unsafe.count, by: perRow) {
            let block = start..<min(unsafe.count, start + perRow)
            for side in [unsafe, safe] {
                var row = Array(side[block])
                while row.count < perRow {
                    row.append(
                        PNGImage(
                            width: row[0].width, height: row[0].height, channels: 3,
                            pixels: [UInt8](repeating: 255, count: row[0].width * row[0].height * 3)
                        ))
                }
                cells += row
            }
        }
        try ImageGrid.make(cells, columns: perRow).write(to: contactSheetPath)
    }
}

extension SDEditPairs.Summary {
    var json: String {
        JSONValue.object([
            ("pairs", .number(pairs)), ("resumed", .number(resumed)),
            ("unsafe_draws", .number(unsafeDraws)), ("unsafe_rejected", .number(unsafeRejected)),
            ("safe_draws", .number(safeDraws)), ("safe_rejected", .number(safeRejected)),
            ("unsafe_showing", .number(unsafeShowing, format: "%.4f")),
            ("safe_showing", .number(safeShowing, format: "%.4f")),
            ("paired_distance", .number(pairedDistance, format: "%.4f")),
            ("unpaired_distance", .number(unpairedDistance, format: "%.4f")),
            ("agreement", .number(agreement, format: "%.4f")),
            ("agreement_measure", agreementMeasure.map(JSONValue.string) ?? .null),
        ]).line + "\n"
    }
}
