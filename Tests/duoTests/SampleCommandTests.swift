import Formats
import Foundation
import XCTest

/// `duo sample` on the tiny pipeline folder of DiffusionTests' fixtures.
final class SampleCommandTests: XCTestCase {
    private static let pipeline = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("DiffusionTests/Fixtures/models/pipeline").path

    private var scratch: String!

    override func setUpWithError() throws {
        scratch =
            FileManager.default.temporaryDirectory.appendingPathComponent("duo-sample-\(UUID())")
            .path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: scratch)
    }

    private func sample(_ extra: [String], out: String) throws -> DuoResult {
        try runDuo(
            [
                "sample", "--model", Self.pipeline, "--prompt", "a photo", "--steps", "4",
                "--out", scratch + "/" + out,
            ] + extra)
    }

    private func pixels(_ name: String) throws -> [Int] {
        try PNGImage(contentsOf: scratch + "/" + name).pixels.map(Int.init)
    }

    private func bytes(_ name: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: scratch + "/" + name))
    }

    func testSameSeedSameImagesAndImagesDoNotDependOnCount() throws {
        XCTAssertEqual(try sample(["--seed", "3"], out: "a.png").status, 0)
        XCTAssertEqual(try sample(["--seed", "3"], out: "b.png").status, 0)
        XCTAssertEqual(try bytes("a.png"), try bytes("b.png"))
        let many = try sample(["--seed", "3", "--count", "2"], out: "m.png")
        XCTAssertEqual(many.status, 0, many.stderr)
        // Image 1 of 2 denoises in a shard of its own, but on one thread where the single
        // image has all of them, and the VAE decodes both images in one batch: GEMMs split
        // or blocked for other shapes round differently, by far less than a level, which
        // can still carry a pixel across a rounding boundary (one level).
        let (one, alone) = (try pixels("m-1.png"), try pixels("a.png"))
        XCTAssertEqual(one.count, alone.count)
        XCTAssertLessThanOrEqual(
            zip(one, alone).map { abs($0 - $1) }.max()!, 1,
            "image 1 of 2 is the image of a single run")
        XCTAssertNotEqual(try bytes("m-2.png"), try bytes("a.png"))
        XCTAssertEqual(try sample(["--seed", "4"], out: "c.png").status, 0)
        XCTAssertNotEqual(try bytes("c.png"), try bytes("a.png"))
    }

    func testGivenLatentsReplaceTheSeedsNoise() throws {
        // latents [1, 4, 16, 16] for the fixture pipeline (8x8 UNet samples, VAE factor 2)
        var writer = SafeTensorsWriter()
        let values = (0..<(4 * 16 * 16)).map { Float(sin(Double($0))) }
        try writer.add("latents", shape: [1, 4, 16, 16], values: values)
        try writer.write(to: scratch + "/latents.safetensors")
        let latents = [
            "--latents", scratch + "/latents.safetensors", "--height", "32", "--width", "32",
        ]
        XCTAssertEqual(try sample(latents + ["--seed", "1"], out: "l1.png").status, 0)
        XCTAssertEqual(try sample(latents + ["--seed", "2"], out: "l2.png").status, 0)
        XCTAssertEqual(
            try bytes("l1.png"), try bytes("l2.png"), "DDIM with given latents ignores the seed")
        XCTAssertEqual(
            try sample(["--seed", "1", "--height", "32", "--width", "32"], out: "s1.png").status, 0)
        XCTAssertNotEqual(try bytes("l1.png"), try bytes("s1.png"))
        let wrong = try sample(latents + ["--count", "2"], out: "w.png")
        XCTAssertNotEqual(wrong.status, 0)
        XCTAssertTrue(wrong.stderr.contains("[1, 4, 16, 16]"), wrong.stderr)
        XCTAssertTrue(
            wrong.stderr.contains(scratch + "/latents.safetensors"),
            "names the file: \(wrong.stderr)")
    }

    func testBadRequestsAreOneLineErrors() throws {
        for (arguments, expected) in [
            (["--scheduler", "euler"], "--scheduler"),
            (["--height", "18"], "multiples of 4"),
            (["--latents", "/nonexistent.safetensors"], "/nonexistent.safetensors"),
        ] {
            let result = try sample(arguments, out: "x.png")
            XCTAssertNotEqual(result.status, 0, "\(arguments)")
            XCTAssertTrue(result.stderr.contains(expected), "\(arguments): \(result.stderr)")
            XCTAssertFalse(
                FileManager.default.fileExists(atPath: scratch + "/x.png"), "no output on failure")
        }
        let missing = try runDuo([
            "sample", "--model", scratch, "--prompt", "x", "--out", scratch + "/y.png",
        ])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains(scratch + "/tokenizer"), missing.stderr)
    }
}
