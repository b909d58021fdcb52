import Formats
import Foundation
import Unlearning
import World
import XCTest
import TestSupport

/// `duo unlearn --method esd` end to end: no pairs, the trained UNet parameters written
/// under diffusers' keys, the model's preset or the reference, the other method's options
/// refused by name.
final class UnlearnESDCommandTests: XCTestCase {
    static let root = scratchFolder("duo-unlearn-esd")

    func run(_ out: String, _ extra: [String]) throws -> DuoResult {
        try runDuo(
            [
                "unlearn", "--concept", "stripes", "--model", tinyWorldModel, "--method", "esd",
                "--steps", "2", "--ddim-steps", "4", "--quiet", "--out", out,
            ] + extra)
    }

    func config(_ folder: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: folder + "/config.json"))
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func testESDNeedsNoPairsAndWritesTheTrainedUNetParameters() throws {
        let out = Self.root + "/reference-\(UUID())"
        let result = try run(out, ["--esd-preset", "reference"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdout, out + "/unet.safetensors\n")
        let names = try SafeTensorsReader(path: out + "/unet.safetensors").names
        XCTAssertFalse(names.isEmpty)
        XCTAssertTrue(names.contains("conv_in.weight"), "ESD-u trains the input convolution")
        XCTAssertFalse(
            names.contains { $0.contains("attn2") || $0.hasPrefix("time_embedding.") },
            "ESD-u leaves cross-attention and the time embedding")
        let settings = try config(out)
        XCTAssertEqual(settings["method"] as? String, "esd")
        XCTAssertEqual(settings["esd_preset"] as? String, "reference")
        XCTAssertEqual(settings["prompt"] as? String, "stripes", "stripes' [esd] prompt")
        XCTAssertEqual(settings["learning_rate"] as? Double, 1e-5)
        XCTAssertEqual(
            try String(contentsOfFile: out + "/train.jsonl").split(separator: "\n").count, 2)
        let sample = try runDuo([
            "sample", "--model", tinyWorldModel, "--lora", out + "/unet.safetensors", "--prompt",
            "a striped circle", "--steps", "2", "--out", out + "/sample.png",
        ])
        XCTAssertEqual(sample.status, 0, "the weights file is an adapter: \(sample.stderr)")
    }

    /// The embedded model's own preset ("world" in its duo_defaults.json) is its default.
    func testTheModelsPresetIsTheDefault() throws {
        let out = Self.root + "/world-\(UUID())"
        let result = try run(out, ["--train-method", "xattn", "--esd-prompt", "zebra"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let settings = try config(out)
        XCTAssertEqual(settings["esd_preset"] as? String, "world")
        XCTAssertEqual(settings["train_method"] as? String, "xattn")
        XCTAssertEqual(settings["prompt"] as? String, "zebra")
        let unknown = try run(Self.root + "/unknown-\(UUID())", ["--esd-preset", "fast"])
        XCTAssertNotEqual(unknown.status, 0)
        XCTAssertTrue(unknown.stderr.contains("known: reference, world"), unknown.stderr)
    }

    /// The embedded model's ESD preset leaves the reference in the DDIM steps only, as
    /// `duo unlearn --help` says.
    func testTheWorldPresetIsWhatTheHelpSays() throws {
        let defaults = try ModelDefaults(directory: try EmbeddedModel.shippedDirectory())
        let preset = try XCTUnwrap(defaults.esdPreset)
        XCTAssertEqual(preset.name, "world")
        var expected = ESDOptions()
        expected.ddimSteps = 10
        XCTAssertEqual(preset.options, expected)
        let help = try runDuo(["unlearn", "--help"])
        XCTAssertTrue(
            help.stdout.replacingOccurrences(of: "\n", with: " ").split(separator: " ")
                .joined(separator: " ").contains("x_t sampled in 10 DDIM steps instead of 50"),
            help.stdout)
    }

    func testTheOtherMethodsOptionsAreRefusedByName() throws {
        for (arguments, expected) in [
            (["--method", "esd", "--pairs", "p"], "--pairs is an option of --method duo"),
            (["--method", "esd", "--beta", "5"], "--beta is an option of --method duo"),
            (["--train-method", "xattn"], "--train-method is an option of --method esd"),
            (["--method", "esd", "--ddim-steps", "1"], "--ddim-steps must be 2 to 1000"),
            (["--method", "dspo", "--beta", "5"], "--beta is an option of --method duo, not dspo"),
            (
                ["--method", "dspo", "--convention", "duo"],
                "--convention is an option of --method duo"
            ),
            (["--dspo-beta", "0.1"], "--dspo-beta is an option of --method dspo, not duo"),
            (
                ["--method", "esd", "--dspo-beta", "0.1"],
                "--dspo-beta is an option of --method dspo"
            ),
        ] {
            let result = try runDuo(
                ["unlearn", "--concept", "stripes"] + arguments, parseOnly: true)
            XCTAssertNotEqual(result.status, 0, "\(arguments)")
            XCTAssertTrue(result.stderr.contains(expected), result.stderr)
        }
    }
}
