import Concepts
import Diffusion
import Formats
import Foundation
import Tensor
import Unlearning

/// `duo eval`: the original model and each adapter on the same prompts and seeds. Defense
/// rate per attack set (the share of images the detector does not see the concept in);
/// prior preservation on the concept's keep prompts, by each `PreservationMetric` (SSIM and
/// PSNR to the original's images for any model; a model's world may add its own).
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

        public init() {}
    }

    /// A model under test: the original (no adapter) or the original with an adapter.
    public struct Candidate: Hashable, Sendable {
        public var label: String
        public var adapter: String?

        public init(label: String, adapter: String?) {
            self.label = label
            self.adapter = adapter
        }
    }

    public let modelDirectory: String
    public let concept: ConceptFile
    public let candidates: [Candidate]
    public let detector: ConceptDetector
    public let threshold: Double
    public let settings: Settings
    public let directory: String
    /// Attack sets: name and prompts.
    public let sets: [(name: String, prompts: [String])]
    /// Generated sets the concept file names whose files are not made yet: name and path.
    public let skippedSets: [(name: String, path: String)]
    /// Learned token embeddings that sets' prompts use (concept inversion), loaded into
    /// the model before sampling.
    public let tokenFiles: [String]
    /// Writes the keep prompts from the concept file's templates.
    public let filler: PromptFiller
    /// The measures of prior preservation, in report order.
    public let preservation: [PreservationMetric]

    public init(
        modelDirectory: String, concept: ConceptFile, candidates: [Candidate],
        detector: ConceptDetector,
        threshold: Double, settings: Settings, directory: String,
        filler: PromptFiller = PlainPrompts(),
        preservation: [PreservationMetric] = [PixelSimilarity()]
    ) throws {
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
        let used = concept.attackSets.filter { set in !unmade.contains { $0.name == set.name } }
        tokenFiles = used.map { GeneratedAttackSet.embeddingsPath(forSet: $0.path) }.filter {
            FileManager.default.fileExists(atPath: $0)
        }
        if let set = used.first(where: { $0.name == GeneratedAttackSet.conceptInversion }),
            !tokenFiles.contains(GeneratedAttackSet.embeddingsPath(forSet: set.path))
        {
            throw AttackError(
                "\(GeneratedAttackSet.embeddingsPath(forSet: set.path)): missing; the \(set.name) set's prompts need the token duo attack concept-inversion writes there"
            )
        }
        sets = try used.map { set in
            let prompts = try PromptSetFile.read(set.path)
            return (set.name, Array(prompts.prefix(settings.promptsPerSet ?? prompts.count)))
        }
        guard !sets.isEmpty else {
            throw AttackError("\(concept.path): names no attack prompt sets ([attacks])")
        }
    }

    /// Runs every candidate; `progress(done, total)` counts images.
    public func run(progress: (Int, Int) -> Void = { _, _ in }) throws -> EvaluationResults {
        let model = try StableDiffusion.load(directory: modelDirectory)
        for file in tokenFiles { try TextualInversionFile.load(file, into: model) }
        let keep = try filler.keepPrompts(concept, count: settings.keepPrompts, seed: settings.seed)
        let perModel = sets.reduce(0) { $0 + $1.prompts.count * settings.seeds } + keep.count
        let total = perModel * candidates.count
        var done = 0
        var results: [ModelResult] = []
        var originalKeep: [PNGImage] = []
        for (index, candidate) in candidates.enumerated() {
            let adapters = try candidate.adapter.map { try LoRAFile.load($0, into: model.unet) }
            defer { adapters?.detach(from: model.unet) }
            var rates: [String: Double] = [:]
            var perPrompt: [String: [Double]] = [:]
            for (setIndex, set) in sets.enumerated() {
                let requests = set.prompts.enumerated().flatMap { i, prompt in
                    (0..<settings.seeds).map { s in
                        TextToImage.Request(
                            prompt: prompt, key: imageKey(set: setIndex, prompt: i, seed: s))
                    }
                }
                let paths = try generate(
                    model, requests, folder: "images/\(candidate.label)/\(set.name)"
                ) {
                    done += $0
                    progress(done, total)
                }
                let shown = try detector.scores(paths: paths).map { $0 > threshold }
                rates[set.name] = Double(shown.filter { !$0 }.count) / Double(shown.count)
                // Images are prompt-major: prompt i's seeds are images i*seeds ..< (i+1)*seeds.
                perPrompt[set.name] = stride(from: 0, to: shown.count, by: settings.seeds).map {
                    start in
                    Double(shown[start..<start + settings.seeds].filter { $0 }.count)
                        / Double(settings.seeds)
                }
            }
            let keepRequests = keep.enumerated().map { i, prompt in
                TextToImage.Request(prompt: prompt, key: imageKey(set: 1000, prompt: i, seed: 0))
            }
            let keepPaths = try generate(
                model, keepRequests, folder: "images/\(candidate.label)/keep"
            ) {
                done += $0
                progress(done, total)
            }
            let keepImages = try keepPaths.map { try PNGImage(contentsOf: $0) }
            if index == 0 { originalKeep = keepImages }
            results.append(
                ModelResult(
                    label: candidate.label, adapter: candidate.adapter, defenseRates: rates,
                    conceptRatePerPrompt: perPrompt,
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

    /// Samples `requests` in batches and writes them as PNGs under `folder`, returning
    /// their paths in order.
    func generate(
        _ model: StableDiffusion, _ requests: [TextToImage.Request], folder: String,
        advanced: (Int) -> Void
    ) throws -> [String] {
        let path = directory + "/" + folder
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        var paths: [String] = []
        for start in stride(from: 0, to: requests.count, by: settings.batchSize) {
            let chunk = Array(requests[start..<min(requests.count, start + settings.batchSize)])
            let images = try TextToImage.sample(
                model: model, requests: chunk, steps: settings.steps, guidance: settings.guidance)
            for (k, image) in try ImageConversion.pngImages(images).enumerated() {
                let file = path + String(format: "/%05d.png", start + k)
                try image.write(to: file)
                paths.append(file)
            }
            advanced(chunk.count)
        }
        return paths
    }
}

/// One model's numbers.
public struct ModelResult: Sendable {
    public var label: String
    public var adapter: String?
    /// Attack set name -> share of images without the concept.
    public var defenseRates: [String: Double]
    /// Attack set name -> for each of its prompts, the share of its seeds' images that
    /// show the concept: which prompts break a defense.
    public var conceptRatePerPrompt: [String: [Double]]
    /// Preservation column key -> value; a missing key was not measured.
    public var preservation: [String: Double]
}

/// Everything `duo eval` measured.
public struct EvaluationResults: Sendable {
    public var concept: String
    /// Attack sets in order, with the prompts used.
    public var sets: [(name: String, prompts: [String])]
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
}
