import Concepts
import Diffusion
import Foundation
import XCTest

@testable import Unlearning

/// ESD's presets: the reference's published settings unless a model folder names its own
/// preset (duo_defaults.json's "esd"), options winning over both; mistakes name the file
/// and key, or the option.
final class ESDSettingsTests: XCTestCase {
    func merged(_ preset: ESDPreset?, _ name: String? = nil, _ options: ESDOptions = .init())
        throws -> ESDSettings
    {
        try ESDSettings.merged(
            modelPreset: preset, preset: name, prompt: "nudity", options: options, seed: 0,
            checkpointEvery: 100)
    }

    var world: ESDPreset {
        var o = ESDOptions()
        o.lora = true
        o.learningRate = 1e-3
        o.ddimSteps = 25
        return ESDPreset(name: "world", options: o)
    }

    /// train-esd.py at b8aeab6: l.297-307 (argparse defaults), l.158 (η of DDIM), l.210 (Adam).
    func testTheReferencePresetIsTrainESDsDefaults() throws {
        let s = try merged(nil)
        XCTAssertEqual(s.preset, "reference")
        XCTAssertEqual(s.trainMethod, .noxattn)
        XCTAssertEqual(s.weights, .fullRank)
        XCTAssertEqual(s.learningRate, 1e-5)
        XCTAssertEqual(s.iterations, 1000)
        XCTAssertEqual(s.startGuidance, 3)
        XCTAssertEqual(s.negativeGuidance, 1)
        XCTAssertEqual(s.ddimSteps, 50)
        XCTAssertEqual(s.prompt, "nudity")
        let model = try StableDiffusion.load(directory: DUOStepParityTests.pipeline)
        let adam = ESDTrainer.adam(FullRankSubset(unet: model.unet, method: .xattn))
        XCTAssertEqual(adam.options.weightDecay, 0, "Adam, not AdamW")
        XCTAssertEqual(
            [adam.options.beta1, adam.options.beta2, adam.options.eps], [0.9, 0.999, 1e-8])
    }

    func testAModelsPresetIsItsDefaultAndReferenceStillNamesTheReference() throws {
        let own = try merged(world)
        XCTAssertEqual(own.preset, "world")
        XCTAssertEqual(own.learningRate, 1e-3)
        XCTAssertEqual(own.ddimSteps, 25)
        XCTAssertEqual(
            own.weights, .lora(rank: 32, alpha: 32, targets: ESDTrainMethod.noxattn.loraTargets))
        XCTAssertEqual(try merged(world, "reference"), try merged(nil))
        var options = ESDOptions()
        options.learningRate = 2e-5
        options.trainMethod = .xattn
        let mixed = try merged(world, nil, options)
        XCTAssertEqual(mixed.learningRate, 2e-5, "options win")
        XCTAssertEqual(mixed.weights, .lora(rank: 32, alpha: 32, targets: [.crossAttention]))
        XCTAssertThrowsError(try merged(world, "fast")) {
            XCTAssertTrue("\($0)".contains("--esd-preset fast"), "\($0)")
            XCTAssertTrue("\($0)".contains("known: reference, world"), "\($0)")
        }
        var rank = ESDOptions()
        rank.rank = 4
        XCTAssertThrowsError(try merged(nil, nil, rank)) {
            XCTAssertTrue("\($0)".contains("--esd-weights lora"), "\($0)")
        }
    }

    func testTheModelFilesESDTableAndItsMistakes() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("esd-\(UUID())")
            .path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        func write(_ text: String) throws {
            try text.write(toFile: folder + "/duo_defaults.json", atomically: true, encoding: .utf8)
        }
        try write(
            #"{"esd": {"preset": "world", "weights": "lora", "targets": ["convs"], "lr": 1e-3, "ddim_steps": 25}}"#
        )
        let preset = try XCTUnwrap(try ModelDefaults(directory: folder).esdPreset)
        XCTAssertEqual(preset.name, "world")
        XCTAssertEqual(preset.options.targets, [.convs])
        XCTAssertEqual(preset.options.ddimSteps, 25)
        for (text, expected) in [
            (#"{"esd": {"preset": "w", "lr": 0}}"#, "key 'esd.lr': expected a number"),
            (#"{"esd": {"preset": "w", "iterationz": 3}}"#, "key 'esd.iterationz': unknown key"),
            (#"{"esd": {"preset": "reference"}}"#, "key 'esd.preset'"),
            (#"{"esd": {"lr": 1e-3}}"#, "key 'esd.preset'"),
            (#"{"esd": {"preset": "w", "train_method": "full"}}"#, "expected noxattn or xattn"),
            (
                #"{"esd": {"preset": "w", "ddim_steps": 2.5}}"#,
                "key 'esd.ddim_steps': expected an integer"
            ),
        ] {
            try write(text)
            XCTAssertThrowsError(try ModelDefaults(directory: folder), text) { error in
                XCTAssertTrue("\(error)".contains("duo_defaults.json"), "\(error)")
                XCTAssertTrue("\(error)".contains(expected), "\(error)")
            }
        }
    }

    /// ESD prompts with one phrase: the concept file's [esd] prompt, else its first
    /// explicit word.
    func testTheConceptPhrase() throws {
        let base = """
            name = "c"
            description = "d"
            kind = "attribute"
            [words]
            explicit = ["naked", "nude"]
            synonyms = ["unclothed"]
            implicit = ["nudist beach"]
            [prompts]
            unsafe = ["a naked person"]
            safe = ["a person"]

            """
        XCTAssertEqual(try ConceptFile(parsing: base, path: "c.toml").esdConceptPrompt, "naked")
        let own = try ConceptFile(parsing: base + "[esd]\nprompt = \"nudity\"\n", path: "c.toml")
        XCTAssertEqual(own.esdConceptPrompt, "nudity")
        XCTAssertThrowsError(
            try ConceptFile(parsing: base + "[esd]\nprompt = \" \"\n", path: "c.toml")
        ) {
            XCTAssertTrue("\($0)".contains("esd.prompt"), "\($0)")
        }
    }
}
