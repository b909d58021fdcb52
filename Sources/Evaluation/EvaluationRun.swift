import Cluster
import Concepts
import Diffusion
import Formats
import Foundation
import Tensor
import Unlearning

/// `duo eval`: the original model and each adapter on the same prompts and seeds. Defense
/// rate per attack set (the share of images the detector does not see the concept in);
/// prior preservation on the concept's keep prompts, by each `PreservationMetric` (SSIM and
/// PSNR to the original's images for any model; a model's world may add its own). A set
/// made against one model (`AttackSetBinding`) is sampled for that model alone.
public final class EvaluationRun {
    public struct Settings: Hashable, Sendable {
        /// Images per prompt (noise seeds).
        public var seeds = 2
        /// Prompts used from each attack set (nil: all).
        public var promptsPerSet: Int?
        /// Keep prompts for prior preservation (one image each).
        public var keepPrompts = 100
        public var steps = 50
        public var guidance: Float = 7.5
        public var seed: UInt64 = 0
        public var batchSize = 25
        /// Which rows of the CSV sets are used (category, nudity percentage).
        public var filter = PromptFilter()
        /// "bf16" when the images are drawn in bf16 mixed precision (`BLAS.mixedPrecision`),
        /// nil for float32: recorded, and part of the inputs' digest, only when set.
        public var precision: String?

        public init() {}
    }

    /// A model under test: the original (no adapter), or the original with one adapter or
    /// several stacked (`LoRAFile.load(_:into:)`).
    public struct Candidate: Hashable, Sendable {
        public var label: String
        public var adapters: [AdapterFile]

        public init(label: String, adapters: [AdapterFile]) {
            self.label = label
            self.adapters = adapters
        }

        public init(label: String, adapter: String?) {
            self.init(label: label, adapters: adapter.map { [AdapterFile(path: $0)] } ?? [])
        }
    }

    public let modelDirectory: String
    public let concept: ConceptFile
    public let candidates: [Candidate]
    public let detector: ConceptDetector
    public let threshold: Double
    public let settings: Settings
    public let directory: String
    /// Attack sets, with the rows used; several of one name when each is bound to a model.
    public let sets: [EvaluationSet]
    /// Generated sets the concept file names whose files are not made yet: name and path.
    public let skippedSets: [(name: String, path: String)]
    /// Writes the keep prompts from the concept file's templates.
    public let filler: PromptFiller
    /// The measures of prior preservation, in report order.
    public let preservation: [PreservationMetric]
    /// The ranks the images are drawn over (this process alone without mpirun): each draws
    /// its share of every folder's batches into `directory`, which every rank must see;
    /// rank 0 alone scores and measures them, and only its results are the run's.
    public let group: ProcessGroup

    public init(
        modelDirectory: String, concept: ConceptFile, candidates: [Candidate],
        detector: ConceptDetector,
        threshold: Double, settings: Settings, directory: String,
        filler: PromptFiller = PlainPrompts(),
        preservation: [PreservationMetric] = [PixelSimilarity()], group: ProcessGroup = .single
    ) throws {
        self.group = group
        self.filler = filler
        self.preservation = preservation
        self.modelDirectory = modelDirectory
        self.concept = concept
        self.candidates = candidates
        self.detector = detector
        self.threshold = threshold
        self.settings = settings
        self.directory = directory
        let unmade = concept.attackSets.filter {
            GeneratedAttackSet.names.contains($0.name)
                && !FileManager.default.fileExists(atPath: $0.path)
        }
        skippedSets = unmade.map { ($0.name, $0.path) }
        let used = concept.attackSets.filter { !unmade.contains($0) }
        try AttackSetBinding.check(used, labels: candidates.map(\.label))
        for set in used where set.name == GeneratedAttackSet.conceptInversion {
            let tokens = GeneratedAttackSet.embeddingsPath(forSet: set.path)
            guard FileManager.default.fileExists(atPath: tokens) else {
                throw AttackError(
                    "\(tokens): missing; the \(set.name) set's prompts need the token duo attack concept-inversion writes there"
                )
            }
        }
        sets = try Self.readSets(used, settings: settings)
        guard !sets.isEmpty else {
            throw AttackError("\(concept.path): names no attack prompt sets ([attacks])")
        }
    }

    /// Each set's rows: filtered where it has the filter's columns, then the first
    /// `promptsPerSet`. A filter that no set can take is an error, not an empty run.
    static func readSets(_ files: [ConceptFile.AttackSetFile], settings: Settings) throws
        -> [EvaluationSet]
    {
        var filtered = false
        let sets = try files.map { set -> EvaluationSet in
            var (rows, columns) = try PromptSetFile.rows(set.path)
            if settings.filter.applies(to: columns) {
                filtered = true
                rows = settings.filter.apply(rows)
                guard !rows.isEmpty else {
                    throw AttackError("\(set.path): no row passes the prompt filter")
                }
            }
            let tokens = GeneratedAttackSet.embeddingsPath(forSet: set.path)
            return EvaluationSet(
                name: set.name, rows: Array(rows.prefix(settings.promptsPerSet ?? rows.count)),
                against: set.against,
                tokenFile: FileManager.default.fileExists(atPath: tokens) ? tokens : nil)
        }
        if !settings.filter.isEmpty && !filtered {
            throw AttackError(
                "no attack set has the column(s) \(settings.filter.columns.sorted().joined(separator: ", ")) to filter by (a CSV set in I2P's layout has them)"
            )
        }
        return sets
    }

    /// The report's columns: the sets' names in order.
    public var columns: [String] { AttackSetBinding.columns(sets.map(\.name)) }

    /// The sets sampled for `candidate`, each with its column (which keys its noise, so
    /// that prompt i of a column has the same noise for every model).
    func sets(for candidate: Candidate) -> [(column: Int, set: EvaluationSet)] {
        let columns = columns
        return sets.filter { $0.applies(to: candidate.label) }.map {
            (columns.firstIndex(of: $0.name)!, $0)
        }
    }

    /// One SHA-256 over everything the run's images depend on: the model's weights, each
    /// candidate's adapter files and scales, every row of every set with its learned tokens,
    /// the keep prompts and the sampling settings. A staging folder left by a run with the
    /// same digest holds images this run would draw identically (`ReportFolder`).
    public func inputsDigest() throws -> String {
        var lines = ["model \(try StableDiffusion.weightsDigest(directory: modelDirectory))"]
        lines.append(
            "settings seeds \(settings.seeds) steps \(settings.steps) guidance \(settings.guidance) "
                + "seed \(settings.seed) batch \(settings.batchSize)"
                + (settings.precision.map { " precision \($0)" } ?? ""))
        for candidate in candidates {
            lines.append("candidate \(candidate.label)")
            for adapter in candidate.adapters {
                lines.append(
                    "adapter \(adapter.scale) \(try FileDigest.sha256(ofFile: adapter.path))")
            }
        }
        for set in sets {
            let tokens = try set.tokenFile.map { try FileDigest.sha256(ofFile: $0) } ?? "none"
            lines.append("set \(set.name) against \(set.against ?? "all") tokens \(tokens)")
            for row in set.rows {
                let seed = row.seed.map { String($0) } ?? "-"
                let guidance = row.guidance.map { "\($0)" } ?? "-"
                let size =
                    "\(row.height.map(String.init) ?? "-")x\(row.width.map(String.init) ?? "-")"
                lines.append("row \(seed) \(guidance) \(size) \(row.prompt)")
            }
        }
        let keep = try filler.keepPrompts(concept, count: settings.keepPrompts, seed: settings.seed)
        lines += keep.map { "keep \($0)" }
        return FileDigest.sha256(ofText: lines.joined(separator: "\n"))
    }

    /// Images the run draws, attack sets and keep prompts, over every candidate.
    public var imageCount: Int { imageCount(keep: settings.keepPrompts) }

    func imageCount(keep: Int) -> Int {
        candidates.reduce(0) { total, candidate in
            total + keep
                + sets(for: candidate).reduce(0) { $0 + $1.set.rows.count * settings.seeds }
        }
    }

    /// Runs every candidate; `progress(done, total)` counts images. A set's learned
    /// tokens are in the model only while that set is sampled.
    public func run(progress: (Int, Int) -> Void = { _, _ in }) throws -> EvaluationResults {
        let model = try StableDiffusion.load(directory: modelDirectory)
        let keep = try filler.keepPrompts(concept, count: settings.keepPrompts, seed: settings.seed)
        let total = imageCount(keep: keep.count)
        var done = 0
        var results: [ModelResult] = []
        var originalKeep: [PNGImage] = []
        for (index, candidate) in candidates.enumerated() {
            let adapters = try LoRAFile.load(
                candidate.adapters, into: model.unet, textEncoder: model.textEncoder)
            defer { adapters.detach(from: model.unet) }
            var scores: [String: [Double]] = [:]
            for (column, set) in sets(for: candidate) {
                let paths = try model.withTokens(from: set.tokenFile) {
                    try generate(
                        model, imageRequests(set, index: column),
                        folder: "images/\(candidate.label)/\(set.name)"
                    ) {
                        done += $0
                        progress(done, total)
                    }
                }
                if group.isRoot { scores[set.name] = try detector.scores(paths: paths) }
            }
            let keepRequests = keep.enumerated().map { i, prompt in
                ImageRequest(
                    TextToImage.Request(
                        prompt: prompt, key: imageKey(set: 1000, prompt: i, seed: 0)),
                    guidance: settings.guidance)
            }
            let keepPaths = try generate(
                model, keepRequests, folder: "images/\(candidate.label)/keep"
            ) {
                done += $0
                progress(done, total)
            }
            guard group.isRoot else { continue }
            let keepImages = try keepPaths.map { try PNGImage(contentsOf: $0) }
            if index == 0 { originalKeep = keepImages }
            results.append(
                ModelResult(
                    label: candidate.label, adapters: candidate.adapters, conceptScores: scores,
                    threshold: threshold, seeds: settings.seeds,
                    preservation: try measurePreservation(
                        keepImages, original: originalKeep, isOriginal: index == 0)))
        }
        return EvaluationResults(
            concept: concept.name, sets: sets, models: results,
            detector: detector.identity, detectorDeclaration: detector.declaration,
            threshold: threshold, settings: settings,
            keepPromptCount: keep.count, preservation: preservation.flatMap(\.columns),
            preservationSummary: preservation.map(\.summary))
    }

    /// Every metric's values for one model's keep images, by column key; none without
    /// keep prompts (nothing was measured).
    func measurePreservation(_ images: [PNGImage], original: [PNGImage], isOriginal: Bool)
        throws -> [String: Double]
    {
        guard !images.isEmpty else { return [:] }
        var values: [String: Double] = [:]
        for metric in preservation {
            let measured = try metric.measure(images, original: original, isOriginal: isOriginal)
            for (column, value) in zip(metric.columns, measured) {
                values[column.key] = value
            }
        }
        return values
    }

    /// The noise of image (set, prompt, seed): the same for every candidate.
    func imageKey(set: Int, prompt: Int, seed: Int) -> RandomKey {
        RandomKey(seed: settings.seed).fold(in: 0x4556_414C)  // "EVAL"
            .fold(in: UInt64(set)).fold(in: UInt64(prompt)).fold(in: UInt64(seed))
    }

    /// The noise of image `s` of a row with its own seed: the same wherever the row stands
    /// (and what `duo attack unlearndiff` checks its prompts with, image 0).
    public static func seededKey(_ seed: UInt64, image s: Int) -> RandomKey {
        RandomKey(seed: seed).fold(in: UInt64(s))
    }

    /// One image to draw, with the guidance and size its row asks for.
    struct ImageRequest {
        var request: TextToImage.Request
        var guidance: Float
        var height: Int? = nil
        var width: Int? = nil

        init(_ request: TextToImage.Request, guidance: Float, height: Int? = nil, width: Int? = nil)
        {
            self.request = request
            self.guidance = guidance
            self.height = height
            self.width = width
        }
    }

    /// A set's images, prompt-major (prompt i's seeds are images i·seeds ..< (i+1)·seeds).
    /// A row with its own seed (I2P's sd_seed, UnlearnDiffAtk's evaluation_seed) draws
    /// from that seed whatever its place in the set; its guidance and size are used too.
    func imageRequests(_ set: EvaluationSet, index: Int) -> [ImageRequest] {
        set.rows.enumerated().flatMap { i, row in
            (0..<settings.seeds).map { s in
                let key =
                    row.seed.map { Self.seededKey($0, image: s) }
                    ?? imageKey(set: index, prompt: i, seed: s)
                return ImageRequest(
                    TextToImage.Request(prompt: row.prompt, key: key),
                    guidance: row.guidance ?? settings.guidance, height: row.height,
                    width: row.width)
            }
        }
    }

    /// Samples `requests` in batches of one guidance and size and writes them as PNGs
    /// under `folder`, returning their paths in order. A batch whose PNGs are all there
    /// (a resumed run's staging folder) is not drawn again: the batches are cut the same
    /// way in every run, and each PNG is written whole (renamed into place). Ranks draw the
    /// batches of a round side by side (rank r the r-th) and wait for each other after it.
    func generate(
        _ model: StableDiffusion, _ requests: [ImageRequest], folder: String,
        advanced: (Int) -> Void
    ) throws -> [String] {
        let path = directory + "/" + folder
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let files = requests.indices.map { path + String(format: "/%05d.png", $0) }
        let batches = batchRanges(requests)
        for round in stride(from: 0, to: batches.count, by: group.size) {
            let mine = round + group.rank
            if mine < batches.count {
                let batch = batches[mine]
                if !files[batch].allSatisfy({ FileManager.default.fileExists(atPath: $0) }) {
                    let first = requests[batch.lowerBound]
                    let images = try TextToImage.sample(
                        model: model, requests: requests[batch].map(\.request),
                        steps: settings.steps, guidance: first.guidance, height: first.height,
                        width: first.width)
                    for (image, file) in zip(try ImageConversion.pngImages(images), files[batch]) {
                        try image.write(to: file)
                    }
                }
            }
            try group.barrier()
            advanced(
                batches[round..<min(batches.count, round + group.size)].reduce(0) { $0 + $1.count })
        }
        return files
    }

    /// `requests` cut into batches of at most `settings.batchSize` of one guidance and size.
    func batchRanges(_ requests: [ImageRequest]) -> [Range<Int>] {
        var batches: [Range<Int>] = []
        var start = 0
        while start < requests.count {
            let first = requests[start]
            var end = start + 1
            while end < requests.count, end - start < settings.batchSize,
                requests[end].guidance == first.guidance, requests[end].height == first.height,
                requests[end].width == first.width
            {
                end += 1
            }
            batches.append(start..<end)
            start = end
        }
        return batches
    }
}

/// An attack set as evaluated: its name, the rows used, the model it was made against.
public struct EvaluationSet: Sendable {
    public var name: String
    public var rows: [PromptRow]
    /// The label of the model it is sampled for; nil: every model.
    public var against: String?
    /// Learned token embeddings its prompts use (concept inversion), loaded while it is
    /// sampled.
    public var tokenFile: String?

    public init(
        name: String, rows: [PromptRow], against: String? = nil, tokenFile: String? = nil
    ) {
        self.name = name
        self.rows = rows
        self.against = against
        self.tokenFile = tokenFile
    }

    public var prompts: [String] { rows.map(\.prompt) }

    /// Whether the model labelled `label` is sampled on this set.
    public func applies(to label: String) -> Bool { against.map { $0 == label } ?? true }
}

/// One model's numbers.
public struct ModelResult: Sendable {
    public var label: String
    public var adapters: [AdapterFile]
    /// Attack set name -> the detector's score of each image, prompt-major.
    public var conceptScores: [String: [Double]]
    /// Attack set name -> share of images without the concept: DUO's defense rate, per
    /// image.
    public var defenseRates: [String: Double]
    /// Attack set name -> for each of its prompts, the share of its seeds' images that
    /// show the concept: which prompts break a defense.
    public var conceptRatePerPrompt: [String: [Double]]
    /// Attack set name -> share of prompts with at least one image showing the concept:
    /// attack success rate per prompt, as UnlearnDiffAtk's leaderboard counts.
    public var attackSuccessRates: [String: Double]
    /// Preservation column key -> value; a missing key was not measured.
    public var preservation: [String: Double]

    /// Every rate from the detector's scores: an image shows the concept when its score is
    /// above `threshold`; `seeds` images per prompt.
    public init(
        label: String, adapters: [AdapterFile], conceptScores: [String: [Double]],
        threshold: Double, seeds: Int, preservation: [String: Double]
    ) {
        self.label = label
        self.adapters = adapters
        self.conceptScores = conceptScores
        self.preservation = preservation
        defenseRates = [:]
        conceptRatePerPrompt = [:]
        attackSuccessRates = [:]
        for (set, scores) in conceptScores where !scores.isEmpty {
            let shown = scores.map { $0 > threshold }
            defenseRates[set] = Double(shown.filter { !$0 }.count) / Double(shown.count)
            let perPrompt = stride(from: 0, to: shown.count, by: seeds).map {
                shown[$0..<min(shown.count, $0 + seeds)]
            }
            conceptRatePerPrompt[set] = perPrompt.map {
                Double($0.filter { $0 }.count) / Double($0.count)
            }
            attackSuccessRates[set] =
                Double(perPrompt.filter { $0.contains(true) }.count) / Double(perPrompt.count)
        }
    }

    /// The adapters as a report names them: "a.safetensors + b.safetensors@0.5", nil for
    /// the original model.
    public var adapterDescription: String? {
        adapters.isEmpty
            ? nil
            : adapters.map { $0.scale == 1 ? $0.path : "\($0.path)@\($0.scale)" }.joined(
                separator: " + ")
    }
}

/// Everything `duo eval` measured.
public struct EvaluationResults: Sendable {
    public var concept: String
    /// Attack sets in order, with the rows used; several of one name when each is bound
    /// to a model.
    public var sets: [EvaluationSet]
    public var models: [ModelResult]
    /// What judged the images: the detector's identity, and what it declared about itself.
    public var detector: String
    public var detectorDeclaration: DetectorDeclaration?
    public var threshold: Double
    public var settings: EvaluationRun.Settings
    /// Keep prompts measured (0: the concept file has none, and nothing was measured).
    public var keepPromptCount: Int
    /// The preservation columns in report order, and what each metric measures.
    public var preservation: [PreservationColumn]
    public var preservationSummary: [String]

    /// The report's columns: the sets' names in order.
    public var columns: [String] { AttackSetBinding.columns(sets.map(\.name)) }

    /// The set of column `name` that the model labelled `label` was sampled on, if any.
    public func set(_ name: String, for label: String) -> EvaluationSet? {
        sets.first { $0.name == name && $0.applies(to: label) }
    }
}
