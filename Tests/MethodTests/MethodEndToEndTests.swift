import Concepts
import Diffusion
import Evaluation
import Formats
import Foundation
import Unlearning
import XCTest

/// The method with no world at all: this target imports only the method's modules (no
/// World). It runs synthesize → unlearn → eval, as a real model's user would, on a tiny
/// latent (VAE) Stable Diffusion pipeline with random weights made by diffusers, a concept
/// file of plain prompts, and a scripted detector in place of a real one.
final class MethodEndToEndTests: XCTestCase {
    /// The tiny SD-style pipeline the Diffusion tests compare against diffusers.
    static let model = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(
            "DiffusionTests/Fixtures/models/pipeline"
        ).path

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
        let setPath = scratch + "/attack.txt"
        try "a red apple\nred fruit on a table\n".write(
            toFile: setPath, atomically: true, encoding: .utf8)
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
                """, path: scratch + "/redness.toml")
    }

    func testSynthesizeUnlearnEvaluateWithoutTheWorld() throws {
        let concept = try concept()
        let model = try StableDiffusion.load(directory: Self.model)
        let filler = PlainPrompts()
        XCTAssertEqual(
            try filler.pairPrompts(concept, count: 3, seed: 0).map(\.unsafe),
            ["a red car", "a red house", "a red car"])

        // synthesize: SDEdit pairs, the detector's scores recorded per pair.
        let detector = RedShareDetector()
        var pairSettings = PairSettings(
            concept: concept, model: Self.model,
            weightsDigest: try StableDiffusion.weightsDigest(directory: Self.model),
            detector: detector.identity, threshold: 0.5)
        pairSettings.filter = false
        pairSettings.batchSize = 2
        let pairsFolder = scratch + "/pairs"
        let summary = try SDEditPairs(
            model: model, concept: concept, detector: detector, settings: pairSettings,
            directory: pairsFolder, filler: filler
        ).run()
        XCTAssertEqual(summary.pairs, 4)
        XCTAssertNil(summary.agreement, "no world, no agreement measure")
        XCTAssertEqual(detector.asked, 8, "each unsafe draw and each safe edit, once")
        XCTAssertGreaterThan(summary.pairedDistance, 0, "the edit changed the image")
        let data = try PairData(directory: pairsFolder)
        XCTAssertEqual(
            data.unsafePrompts, ["a red car", "a red house", "a red car", "a red house"])

        // unlearn: a few DUO steps; the adapter must move the model.
        var options = UnlearningOptions()
        options.steps = 3
        options.rank = 2
        options.batchSize = 2
        options.checkpointEvery = 100
        let settings = try UnlearningSettings.merged(
            model: ModelDefaults(directory: Self.model), concept: concept.unlearning,
            options: options)
        let runFolder = scratch + "/adapter"
        try FileManager.default.createDirectory(
            atPath: runFolder, withIntermediateDirectories: true)
        let trainer = try UnlearningTrainer(
            model: model, pairs: data, settings: settings, directory: runFolder, identity: [])
        var losses: [Float] = []
        let reached = try trainer.train(resume: false) { log in
            losses.append(log.terms.first { $0.0 == "loss" }?.1 ?? .nan)
            return true
        }
        XCTAssertEqual(reached, 3)
        XCTAssertTrue(losses.allSatisfy(\.isFinite), "\(losses)")
        try TrainingReport.writeAdapter(trainer, concept: concept.name)
        trainer.lora.detach(from: model.unet)
        let adapter = runFolder + "/adapter.safetensors"

        // eval: the original against the adapter, scored by the same scripted detector.
        var evalSettings = EvaluationRun.Settings()
        evalSettings.seeds = 2
        evalSettings.keepPrompts = 2
        evalSettings.steps = 4
        let reportFolder = scratch + "/report"
        let run = try EvaluationRun(
            modelDirectory: Self.model, concept: concept,
            candidates: [
                EvaluationRun.Candidate(label: "original", adapter: nil),
                EvaluationRun.Candidate(label: "DUO", adapter: adapter),
            ], detector: detector, threshold: 0.5, settings: evalSettings,
            directory: reportFolder, filler: filler,
            preservation: [
                PixelSimilarity(),
                try CLIPPreservation(
                    folder: Self.clip,
                    prompts: try filler.keepPrompts(
                        concept, count: evalSettings.keepPrompts, seed: evalSettings.seed)),
            ])
        let results = try run.run()
        try EvaluationReport.write(results, directory: reportFolder)

        XCTAssertEqual(
            results.preservation.map(\.key), ["ssim", "psnr", "clip_score", "clip_fid"])
        XCTAssertEqual(try XCTUnwrap(results.models[0].preservation["ssim"]), 1, accuracy: 1e-12)
        let adapted = try XCTUnwrap(results.models[1].preservation["ssim"])
        XCTAssertLessThan(adapted, 1, "the adapter changes the keep images")
        XCTAssertEqual(results.models[0].preservation["clip_fid"], 0, "the original to itself")
        let clipFID = try XCTUnwrap(results.models[1].preservation["clip_fid"])
        XCTAssertGreaterThan(clipFID, 0, "the adapter changes the keep images' CLIP features")
        XCTAssertNotNil(results.models[1].preservation["clip_score"])
        for (index, label) in ["original", "DUO"].enumerated() {
            // The defense rate is the share of the set's images the detector passes.
            let folder = reportFolder + "/images/\(label)/explicit"
            let files = try FileManager.default.contentsOfDirectory(atPath: folder).sorted()
            XCTAssertEqual(files.count, 4, "2 prompts x 2 seeds")
            let passed = try files.filter {
                RedShareDetector.score(try PNGImage(contentsOf: folder + "/" + $0)) <= 0.5
            }
            XCTAssertEqual(
                results.models[index].defenseRates["explicit"], Double(passed.count) / 4)
        }
        for file in ["report.md", "report.html", "results.json", "plot.svg"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: reportFolder + "/" + file), file)
        }
        let markdown = try String(contentsOfFile: reportFolder + "/report.md", encoding: .utf8)
        XCTAssertFalse(markdown.lowercased().contains("world"), markdown)
    }
}
