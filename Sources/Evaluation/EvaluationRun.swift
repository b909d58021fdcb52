import Diffusion
import Formats
import Foundation
import Tensor
import Unlearning
import World

/// `duo eval`: the original model and each adapter on the same prompts and seeds. Defense
/// rate per attack set (the share of images the detector does not see the concept in);
/// prior preservation on the concept's keep prompts: world FID to real world images and
/// to the original's images, prompt faithfulness, and per-seed similarity to the
/// original's images (world-feature distance for world models; SSIM and PSNR for any).
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

    public init(
        modelDirectory: String, concept: ConceptFile, candidates: [Candidate],
        detector: ConceptDetector,
        threshold: Double, settings: Settings, directory: String
    ) throws {
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
        let keep = concept.keepPrompts(count: settings.keepPrompts, seed: settings.seed)
        let perModel = sets.reduce(0) { $0 + $1.prompts.count * settings.seeds } + keep.count
        let total = perModel * candidates.count
        var done = 0
        var results: [ModelResult] = []
        var originalKeep: [PNGImage] = []
        let world = WorldEvaluator(keep: keep)
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
            let keepRequests = keep.enumerated().map { i, item in
                TextToImage.Request(
                    prompt: item.prompt, key: imageKey(set: 1000, prompt: i, seed: 0))
            }
            let keepPaths = try generate(
                model, keepRequests, folder: "images/\(candidate.label)/keep"
            ) {
                done += $0
                progress(done, total)
            }
            let keepImages = try keepPaths.map { try PNGImage(contentsOf: $0) }
            if index == 0 { originalKeep = keepImages }
            let similarity = zip(keepImages, originalKeep).map {
                (ImageSimilarity.ssim($0, $1), ImageSimilarity.psnr($0, $1))
            }
            var result = ModelResult(
                label: candidate.label, adapter: candidate.adapter, defenseRates: rates,
                conceptRatePerPrompt: perPrompt,
                ssim: similarity.map(\.0).reduce(0, +) / Double(max(1, similarity.count)),
                psnr: similarity.map(\.1).reduce(0, +) / Double(max(1, similarity.count)))
            if let world, let metrics = world.metrics(keepImages, original: originalKeep) {
                result.faithfulness = metrics.faithfulness
                result.fid = metrics.fid
                result.fidToOriginal = index == 0 ? 0 : metrics.fidToOriginal
                result.featureDistance = metrics.featureDistance
            }
            results.append(result)
        }
        return EvaluationResults(
            concept: concept.name, sets: sets, models: results,
            detector: detector.identity, threshold: threshold, settings: settings)
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
    /// Mean SSIM and PSNR of keep-prompt images to the original's, same prompt and noise.
    public var ssim: Double
    public var psnr: Double
    /// World models only: shape and colour as prompted on keep prompts, world FID to real
    /// world images and to the original's keep images, mean world-feature distance to
    /// the original's image per seed.
    public var faithfulness: Double?
    public var fid: Double?
    public var fidToOriginal: Double?
    public var featureDistance: Double?

    init(
        label: String, adapter: String?, defenseRates: [String: Double],
        conceptRatePerPrompt: [String: [Double]],
        ssim: Double, psnr: Double
    ) {
        self.label = label
        self.adapter = adapter
        self.defenseRates = defenseRates
        self.conceptRatePerPrompt = conceptRatePerPrompt
        self.ssim = ssim
        self.psnr = psnr
    }
}

/// Everything `duo eval` measured.
public struct EvaluationResults: Sendable {
    public var concept: String
    /// Attack sets in order, with the prompts used.
    public var sets: [(name: String, prompts: [String])]
    public var models: [ModelResult]
    public var detector: String
    public var threshold: Double
    public var settings: EvaluationRun.Settings
}

/// Prior-preservation metrics that need the world: the keep prompts' scenes and the world
/// detector's heads and features. Nil when a keep prompt is no world caption.
struct WorldEvaluator {
    let network: WorldDetector
    let scenes: [SceneSpec]

    init?(keep: [(prompt: String, scene: SceneSpec?)]) {
        let scenes = keep.compactMap(\.scene)
        guard !scenes.isEmpty, scenes.count == keep.count,
            let network = try? WorldDetector.shipped()
        else { return nil }
        self.network = network
        self.scenes = scenes
    }

    func metrics(_ images: [PNGImage], original: [PNGImage])
        -> (faithfulness: Double, fid: Double, fidToOriginal: Double, featureDistance: Double)?
    {
        guard images.allSatisfy({ $0.width == World.size && $0.height == World.size }) else {
            return nil
        }
        let tensor = stack(images), reference = stack(original)
        let predictions = network.predict(tensor)
        let faithful = zip(predictions, scenes).filter {
            $0.shape == $1.labels.shape && $0.colour == $1.labels.colour
        }.count
        let world = World()
        let real = Tensor(
            world.renderAll(scenes), shape: [scenes.count, 3, World.size, World.size])
        let features = GradMode.withNoGrad { network.features(tensor).scalars }
        let originalFeatures = GradMode.withNoGrad { network.features(reference).scalars }
        let d = WorldDetector.featureCount
        var distance = 0.0
        for i in 0..<images.count {
            var sum = 0.0
            for j in 0..<d {
                sum += pow(Double(features[i * d + j] - originalFeatures[i * d + j]), 2)
            }
            distance += sum.squareRoot()
        }
        return (
            Double(faithful) / Double(scenes.count),
            FrechetDistance.distance(network, tensor, real),
            FrechetDistance.distance(network, tensor, reference), distance / Double(images.count)
        )
    }

    func stack(_ images: [PNGImage]) -> Tensor {
        WorldDetector.stack(images.map(WorldImage.floats))
    }
}
