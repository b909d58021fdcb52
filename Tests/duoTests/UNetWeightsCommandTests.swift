import Formats
import Foundation
import XCTest

/// UNet weights files (tools/make_unet_weights_fixture.py) through the commands that take
/// adapters: `duo merge --lora` writes W_base + scale (W_file - W_base), `duo sample --lora`
/// draws what the merged model draws, and a file that is neither kind is refused.
final class UNetWeightsCommandTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("DiffusionTests/Fixtures").path
    static let edit = fixtures + "/unet-weights/edit.safetensors"
    static let edit2 = fixtures + "/unet-weights/edit2.safetensors"
    static let pipeline = UnlearnCommandTests.pipeline

    let dir = FileManager.default.temporaryDirectory
        .appendingPathComponent("duo-unet-weights-\(UUID().uuidString)").path

    override func setUpWithError() throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func mergedWeights(scale: String, also: [String] = []) throws -> SafeTensorsReader {
        let out = dir + "/merged-\(scale)-\(also.count)"
        let merge = try runDuo(
            ["merge", "--model", Self.pipeline, "--lora", Self.edit + "@" + scale]
                + also.flatMap { ["--lora", $0] } + ["--out", out])
        XCTAssertEqual(merge.status, 0, merge.stderr)
        return try SafeTensorsReader(path: out + "/unet/diffusion_pytorch_model.safetensors")
    }

    func testMergeWritesTheFilesValuesAndTheBaseElsewhere() throws {
        let base = try SafeTensorsReader(
            path: Self.pipeline + "/unet/diffusion_pytorch_model.safetensors")
        let edit = try SafeTensorsReader(path: Self.edit)
        let edit2 = try SafeTensorsReader(path: Self.edit2)
        let full = try mergedWeights(scale: "1")
        let half = try mergedWeights(scale: "0.5")
        XCTAssertEqual(Set(full.names), Set(base.names))
        for name in base.names {
            let (b, m, h) = (try base.floats(name), try full.floats(name), try half.floats(name))
            guard edit.contains(name) else {
                XCTAssertEqual(m, b, "\(name) is not in the file: the base's values")
                continue
            }
            let e = try edit.floats(name)
            XCTAssertEqual(m, e, "\(name) at scale 1: the file's values")
            let expected = zip(b, e).map { Float(Double($0) + 0.5 * (Double($1) - Double($0))) }
            XCTAssertEqual(h, expected, "\(name) at scale 0.5: halfway to the file's values")
        }
        // A second file: each adds its change (edit2 changes conv_out.bias alone).
        let two = try mergedWeights(scale: "1", also: [Self.edit2 + "@0.5"])
        let (b, e2) = (try base.floats("conv_out.bias"), try edit2.floats("conv_out.bias"))
        XCTAssertEqual(
            try two.floats("conv_out.bias"),
            zip(b, e2).map { Float(Double($0) + 0.5 * (Double($1) - Double($0))) },
            "two files: edit2's change at scale 0.5 added")
    }

    func testSampleWithTheFileDrawsWhatTheMergedModelDraws() throws {
        _ = try mergedWeights(scale: "1")
        let common = ["--prompt", "a photo", "--steps", "4", "--seed", "3"]
        func sample(_ extra: [String], _ name: String) throws -> [UInt8] {
            let r = try runDuo(["sample"] + common + extra + ["--out", dir + "/" + name])
            XCTAssertEqual(r.status, 0, r.stderr)
            return try PNGImage(contentsOf: dir + "/" + name).pixels
        }
        let base = try sample(["--model", Self.pipeline], "base.png")
        let adapted = try sample(["--model", Self.pipeline, "--lora", Self.edit], "edit.png")
        let merged = try sample(["--model", dir + "/merged-1-0"], "merged.png")
        XCTAssertEqual(adapted, merged, "the same weights: the same image")
        XCTAssertNotEqual(adapted, base, "the file changes the image")
    }

    func testAFileOfNeitherKindIsRefusedInOneLine() throws {
        var writer = SafeTensorsWriter()
        try writer.add("text_model.final_layer_norm.weight", shape: [2], values: [1, 1])
        try writer.write(to: dir + "/neither.safetensors")
        let result = try runDuo([
            "sample", "--model", Self.pipeline, "--prompt", "a", "--steps", "2", "--lora",
            dir + "/neither.safetensors", "--out", dir + "/x.png",
        ])
        XCTAssertNotEqual(result.status, 0)
        let errors = result.stderr.split(separator: "\n").filter { $0.hasPrefix("Error:") }
        XCTAssertEqual(errors.count, 1, result.stderr)
        XCTAssertTrue(
            result.stderr.contains(
                "neither.safetensors: key 'text_model.final_layer_norm.weight': is neither a UNet LoRA weight"
            ),
            result.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/x.png"))
    }
}
