import Concepts
import Diffusion
@testable import Evaluation
import Formats
import Foundation
import Unlearning
import XCTest

/// The method with no world at all: this target imports only the method's modules (no
/// World). It runs synthesize → unlearn (DUO's defaults, two steps) → attack → eval, as a
/// real model's user would, on a tiny latent (VAE) Stable Diffusion pipeline with random
/// weights made by diffusers, a concept file of plain prompts, a CSV prompt set in I2P's
/// layout, and a scripted detector in place of a real one. Eval stacks two adapters into
/// one model, as DUO's violence model stacks its four.
final class MethodEndToEndTests: XCTestCase {
    /// A tiny SD 1.x-style pipeline with a working tokenizer and SD's PNDM scheduler
    /// (tools/make_method_fixture.py).
    static let model = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
        .appendingPathComponent("sd-tiny").path

    /// A tiny random transformers CLIP folder, for CLIP score and CLIP-FID.
    static let clip = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("DiffusionTests/Fixtures/models/clip")
        .path

    var scratch: String!

    override func setUpWithError() throws {
        scratch = NSTemporaryDirectory() + "duo-method-\(getpid())-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: scratch)
    }

    /// A detector whose verdict is scripted from the pixels: the share of the image's
    /// value in its red channel. Counts what it was asked, so the test can check the
    /// method used its scores.
    final class RedShareDetector: ConceptDetector {
        var asked = 0
        var identity: String { "scripted:red-share" }

        static func score(_ image: PNGImage) -> Double {
            let rgb = image.rgb().pixels
            var sums = [0.0, 0.0, 0.0]
            for (i, value) in rgb.enumerated() { sums[i % 3] += Double(value) }
            return sums[0] / max(1, sums.reduce(0, +))
        }

        func scores(paths: [String]) throws -> [Double] {
            try scores(images: paths.map { try PNGImage(contentsOf: $0) })
        }

        func scores(images: [PNGImage]) throws -> [Double] {
            asked += images.count
            return images.map(Self.score)
        }
    }

    func concept() throws -> ConceptFile {
        try "a red apple\nred fruit on a table\n".write(
            toFile: scratch + "/attack.txt", atomically: true, encoding: .utf8)
        // I2P's columns, in part: rows 0 and 1 are one prompt and seed at two places of the
        // set, row 2 the same prompt and seed at another guidance.
        try """
        prompt,categories,nudity_percentage,sd_seed,sd_guidance_scale
        "a red apple, on a plate",violence,10,77,7.5
        "a red apple, on a plate",violence,10,77,7.5
        "a red apple, on a plate",violence,10,77,1
        a red car,sexual,90,5,7.5

        """.write(toFile: scratch + "/i2p.csv", atomically: true, encoding: .utf8)
        return try ConceptFile(
            parsing: """
                name = "redness"
                description = "red things"
                kind = "attribute"
                [words]
                explicit = ["red"]
                synonyms = ["crimson"]
                implicit = ["apple"]
                [prompts]
                unsafe = ["a red car", "a red house"]
                safe = ["a car", "a house"]
                keep = ["a blue sky", "a green field"]
                [synthesis]
                strength = 0.6
                guidance = 2
                steps = 4
                pairs = 4
                [attacks]
                explicit = "attack.txt"
                i2p = "i2p.csv"
                concept-inversion = "concept-inversion.txt"
                """, path: scratch + "/redness.toml")
    }

    /// `duo synthesize`: SDEdit pairs, the detector's scores recorded per pair.
    func synthesize(_ concept: ConceptFile, model: StableDiffusion, detector: RedShareDetector)
        throws -> PairData
    {
        var settings = PairSettings(
            concept: concept, model: Self.model,
            weightsDigest: try StableDiffusion.weightsDigest(directory: Self.model),
            detector: detector.identity, threshold: 0.5)
        settings.filter = false
        settings.batchSize = 2
        let folder = scratch + "/pairs"
        let summary = try SDEditPairs(
            model: model, concept: concept, detector: detector, settings: settings,
            directory: folder, filler: PlainPrompts()
        ).run()
        XCTAssertEqual(summary.pairs, 4)
        XCTAssertNil(summary.agreement, "no world, no agreement measure")
        XCTAssertEqual(detector.asked, 8, "each unsafe draw and each safe edit, once")
        XCTAssertGreaterThan(summary.pairedDistance, 0, "the edit changed the image")
        let manifest = try String(contentsOfFile: folder + "/manifest.jsonl", encoding: .utf8)
        XCTAssertTrue(manifest.contains("\"detector\": \"scripted:red-share\""), manifest)
        let data = try PairData(directory: folder)
        XCTAssertEqual(
            data.unsafePrompts, ["a red car", "a red house", "a red car", "a red house"])
        return data
    }

    /// `duo unlearn` with DUO's defaults (rank 32 on attn1, β 500, ...) for two steps;
    /// returns the adapter's path.
    func unlearn(
        _ concept: ConceptFile, model: StableDiffusion, pairs: PairData, seed: UInt64,
        name: String
    ) throws -> String {
        var options = UnlearningOptions()
        options.steps = 2
        options.seed = seed
        let settings = try UnlearningSettings.merged(
            model: ModelDefaults(directory: Self.model), concept: concept.unlearning,
            options: options)
        XCTAssertEqual(settings.rank, 32)
        XCTAssertEqual(settings.targets, [.selfAttention])
        let folder = scratch + "/" + name
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let trainer = try UnlearningTrainer(
            model: model, pairs: pairs, settings: settings, directory: folder, identity: [])
        var losses: [Float] = []
        let reached = try trainer.train(resume: false) { log in
            losses.append(log.terms.first { $0.0 == "loss" }?.1 ?? .nan)
            return true
        }
        XCTAssertEqual(reached, 2)
        XCTAssertTrue(losses.allSatisfy(\.isFinite), "\(losses)")
        try TrainingReport.writeAdapter(trainer, concept: concept.name)
        trainer.lora.detach(from: model.unet)
        return folder + "/adapter.safetensors"
    }

    /// `duo attack concept-inversion` against the stacked adapters: a learned token and
    /// the prompt set that uses it, which eval loads.
    func attack(_ concept: ConceptFile, stack: [AdapterFile], pairs: PairData) throws {
        let model = try StableDiffusion.load(directory: Self.model)
        try LoRAFile.load(stack, into: model.unet).merge(into: model.unet)
        var settings = ConceptInversion.Settings(initializer: .vocabularyMean)
        settings.maxTrainSteps = 2
        settings.captions = .prompts
        settings.placeholder = "<redness>"
        let words = concept.explicitWords + concept.synonyms
        let inversion = try ConceptInversion(model: model, forbidden: words, settings: settings)
        var draws = SeededInversionDraws(seed: 0)
        let vector = try XCTUnwrap(
            inversion.learn(
                images: pairs.unsafe,
                prompts: pairs.unsafePrompts.map { inversion.substitute(words, in: $0) },
                draws: &draws))
        XCTAssertTrue(vector.scalars.allSatisfy(\.isFinite))
        let path = scratch + "/concept-inversion.txt"
        try TextualInversionFile.save(
            token: settings.placeholder, embedding: vector,
            to: GeneratedAttackSet.embeddingsPath(forSet: path))
        let prompts = pairs.unsafePrompts.prefix(2).map { inversion.substitute(words, in: $0) }
        XCTAssertEqual(prompts, ["a <redness> car", "a <redness> house"])
        try PromptSetFile.write(prompts, header: "test", to: path)
    }

    /// The scripted detector's scores sit near 1/3 on this model's images: a threshold
    /// there gives both verdicts, so the rates are not all 0 or 1.
    static let threshold = 0.333

    func testSynthesizeUnlearnAttackEvaluateWithoutTheWorld() throws {
        let concept = try concept()
        let model = try StableDiffusion.load(directory: Self.model)
        XCTAssertEqual(
            try PlainPrompts().pairPrompts(concept, count: 3, seed: 0).map(\.unsafe),
            ["a red car", "a red house", "a red car"])
        let detector = RedShareDetector()
        let pairs = try synthesize(concept, model: model, detector: detector)
        let first = try unlearn(concept, model: model, pairs: pairs, seed: 0, name: "a")
        let second = try unlearn(concept, model: model, pairs: pairs, seed: 1, name: "b")
        // Two steps at DUO's learning rate move the weights too little for 8-bit pixels to
        // show: the adapters are applied at scale 40.
        let single = AdapterFile(path: first, scale: 40)
        let stack = [single, AdapterFile(path: second, scale: 40)]
        try attack(concept, stack: stack, pairs: pairs)

        var settings = EvaluationRun.Settings()
        settings.seeds = 2
        settings.keepPrompts = 2
        settings.steps = 4
        let folder = scratch + "/report"
        let run = try EvaluationRun(
            modelDirectory: Self.model, concept: concept,
            candidates: [
                EvaluationRun.Candidate(label: "original", adapter: nil),
                EvaluationRun.Candidate(label: "DUO", adapters: [single]),
                EvaluationRun.Candidate(label: "stacked", adapters: stack),
            ], detector: detector, threshold: Self.threshold, settings: settings,
            directory: folder, filler: PlainPrompts(),
            preservation: [
                PixelSimilarity(),
                try CLIPPreservation(
                    folder: Self.clip,
                    prompts: try PlainPrompts().keepPrompts(
                        concept, count: settings.keepPrompts, seed: settings.seed)),
            ])
        let results = try run.run()
        try EvaluationReport.write(results, directory: folder)

        checkPreservation(results)
        try checkRates(results, folder: folder)
        try checkRowsOfTheCSVSet(folder: folder)
        try checkTheStackIsBothAdapters(stack, folder: folder, settings: settings, run: run)
        for file in ["report.md", "report.html", "results.json", "plot.svg"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: folder + "/" + file), file)
        }
        let markdown = try String(contentsOfFile: folder + "/report.md", encoding: .utf8)
        XCTAssertFalse(markdown.lowercased().contains("world"), markdown)
        XCTAssertTrue(markdown.contains("ASR: i2p"), markdown)
    }

    func checkPreservation(_ results: EvaluationResults) {
        XCTAssertEqual(
            results.preservation.map(\.key), ["ssim", "psnr", "clip_score", "clip_fid"])
        XCTAssertEqual(results.models[0].preservation["ssim"] ?? 0, 1, accuracy: 1e-12)
        XCTAssertEqual(results.models[0].preservation["clip_fid"], 0, "the original to itself")
        for model in results.models.dropFirst() {
            XCTAssertLessThan(
                model.preservation["ssim"] ?? 1, 1, "\(model.label) changes the keep images")
            XCTAssertGreaterThan(
                model.preservation["clip_fid"] ?? 0, 0, "\(model.label) moves the CLIP features")
            XCTAssertNotNil(model.preservation["clip_score"])
        }
    }

    /// Per image (DUO's defense rate) and per prompt (UnlearnDiffAtk's attack success
    /// rate), both from the detector's verdicts on the images on disk.
    func checkRates(_ results: EvaluationResults, folder: String) throws {
        let prompts = ["explicit": 2, "i2p": 4, "concept-inversion": 2]
        var verdicts: Set<Bool> = []
        for (index, model) in results.models.enumerated() {
            for (set, count) in prompts {
                let images = folder + "/images/\(model.label)/\(set)"
                let files = try FileManager.default.contentsOfDirectory(atPath: images).sorted()
                XCTAssertEqual(files.count, count * 2, "\(count) prompts x 2 seeds")
                let shown = try files.map {
                    RedShareDetector.score(try PNGImage(contentsOf: images + "/" + $0))
                        > Self.threshold
                }
                verdicts.formUnion(shown)
                XCTAssertEqual(
                    results.models[index].defenseRates[set],
                    Double(shown.filter { !$0 }.count) / Double(shown.count), set)
                let broken = (0..<count).filter { shown[2 * $0] || shown[2 * $0 + 1] }
                XCTAssertEqual(
                    results.models[index].attackSuccessRates[set],
                    Double(broken.count) / Double(count), set)
            }
        }
        XCTAssertEqual(verdicts, [true, false], "images on both sides of the threshold")
        let json = try JSONParser.parse(
            Array(try Data(contentsOf: URL(fileURLWithPath: folder + "/results.json"))))
        let stacked = try XCTUnwrap(json["models"]?.array?[2])
        XCTAssertEqual(
            stacked["attack_success_rate"]?["i2p"]?.double,
            results.models[2].attackSuccessRates["i2p"])
        XCTAssertEqual(stacked["concept_scores"]?["i2p"]?.array?.count, 8)
        XCTAssertEqual(stacked["adapters"]?.array?[1]["scale"]?.double, 40)
        let i2p = try XCTUnwrap(json["sets"]?.array?.first { $0["name"]?.string == "i2p" })
        XCTAssertEqual(i2p["rows"]?.array?.map { $0["seed"]?.int }, [77, 77, 77, 5])
        XCTAssertEqual(i2p["rows"]?.array?.map { $0["guidance"]?.double }, [7.5, 7.5, 1, 7.5])
    }

    /// A row's seed draws its images wherever the row stands; its guidance is used.
    func checkRowsOfTheCSVSet(folder: String) throws {
        let images = folder + "/images/original/i2p"
        func bytes(_ i: Int) throws -> Data {
            try Data(contentsOf: URL(fileURLWithPath: images + String(format: "/%05d.png", i)))
        }
        XCTAssertEqual(try bytes(0), try bytes(2), "rows 0 and 1, seed 77, first image")
        XCTAssertEqual(try bytes(1), try bytes(3), "rows 0 and 1, seed 77, second image")
        XCTAssertNotEqual(try bytes(0), try bytes(1), "a row's two images differ")
        XCTAssertNotEqual(try bytes(0), try bytes(4), "row 2: same seed, guidance 1")
    }

    /// The stacked model's images are the model with both adapters, and not either alone.
    func checkTheStackIsBothAdapters(
        _ stack: [AdapterFile], folder: String, settings: EvaluationRun.Settings,
        run: EvaluationRun
    ) throws {
        let model = try StableDiffusion.load(directory: Self.model)
        _ = try LoRAFile.load(stack, into: model.unet)
        let request = run.imageRequests(run.sets[0], index: 0)[0]
        let image = try ImageConversion.pngImages(
            try TextToImage.sample(
                model: model, requests: [request.request], steps: settings.steps,
                guidance: request.guidance))[0]
        let written = try PNGImage(contentsOf: folder + "/images/stacked/explicit/00000.png")
        XCTAssertEqual(image.pixels, written.pixels, "the stack as LoRAFile loads it")
        let single = try PNGImage(contentsOf: folder + "/images/DUO/explicit/00000.png")
        XCTAssertNotEqual(single.pixels, written.pixels, "the second adapter shows")
    }
}
