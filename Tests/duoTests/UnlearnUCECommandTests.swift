import Formats
import Foundation
import XCTest

/// `duo unlearn --method uce` on the embedded model: the closed-form edit written as a UNet
/// weights file with config.json and report.md, deterministic, with the options reaching
/// the settings, and another run's folder refused unless --force.
final class UnlearnUCECommandTests: XCTestCase {
    let dir = FileManager.default.temporaryDirectory
        .appendingPathComponent("duo-uce-\(UUID().uuidString)").path

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    func uce(_ out: String, _ extra: [String] = []) throws -> DuoResult {
        try runDuo(
            ["unlearn", "--method", "uce", "--concept", "stripes", "--out", out] + extra)
    }

    func config(_ folder: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: folder + "/config.json"))
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func testTheEditIsAUNetWeightsFileOfTheCrossAttentionKeysAndValues() throws {
        let out = dir + "/run"
        let result = try uce(out)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdout, out + "/adapter.safetensors\n")
        let weights = try SafeTensorsReader(path: out + "/adapter.safetensors")
        XCTAssertFalse(weights.names.isEmpty)
        for name in weights.names {
            XCTAssertTrue(
                name.hasSuffix("attn2.to_k.weight") || name.hasSuffix("attn2.to_v.weight"), name)
        }
        XCTAssertEqual(weights.metadata["duo_content"], "unet-weights")
        let c = try config(out)
        XCTAssertEqual(c["method"] as? String, "uce")
        XCTAssertEqual(c["erase"] as? [String], ["striped", "stripes"], "the explicit words")
        XCTAssertEqual(c["guide"] as? [String], ["", ""])
        XCTAssertEqual(c["lambda"] as? Double, 0.5)
        XCTAssertEqual(c["model"] as? String, "embedded")
        XCTAssertEqual(
            (c["preserve"] as? [String])?.count, 11, "the world preset: shape and colour words")
        let reference = try uce(dir + "/reference", ["--uce-preserve", ""])
        XCTAssertEqual(reference.status, 0, reference.stderr)
        XCTAssertEqual(try config(dir + "/reference")["preserve"] as? [String], [])
        XCTAssertEqual(try config(dir + "/reference")["preserve_scale"] as? Double, 1)
        let report = try String(contentsOfFile: out + "/report.md", encoding: .utf8)
        XCTAssertTrue(report.contains("| \"striped\" | (empty prompt) | 1 | 0 |"), report)

        // The same run again: the same bytes, into the same folder.
        let again = try uce(out)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertEqual(
            try Data(contentsOf: URL(fileURLWithPath: out + "/adapter.safetensors")),
            try Data(contentsOf: URL(fileURLWithPath: dir + "/run/adapter.safetensors")))
        let copy = try uce(dir + "/copy")
        XCTAssertEqual(copy.status, 0, copy.stderr)
        XCTAssertEqual(
            try Data(contentsOf: URL(fileURLWithPath: dir + "/copy/adapter.safetensors")),
            try Data(contentsOf: URL(fileURLWithPath: out + "/adapter.safetensors")),
            "deterministic")
    }

    func testOptionsReachTheSettingsAndAnotherRunIsNotReplacedUnasked() throws {
        let out = dir + "/run"
        XCTAssertEqual(try uce(out).status, 0)
        let options = [
            "--uce-erase", "zebra", "--uce-erase", "tiger", "--uce-guide", "a horse",
            "--uce-preserve", "a red circle", "--uce-lambda", "0.3", "--uce-erase-scale", "0.7",
            "--uce-preserve-scale", "0.2", "--uce-technique", "tensor",
        ]
        let refused = try uce(out, options)
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("holds a run with other settings"), refused.stderr)
        let forced = try uce(out, options + ["--force"])
        XCTAssertEqual(forced.status, 0, forced.stderr)
        let c = try config(out)
        XCTAssertEqual(c["erase"] as? [String], ["zebra", "tiger"])
        XCTAssertEqual(c["guide"] as? [String], ["a horse", "a horse"])
        XCTAssertEqual(c["preserve"] as? [String], ["a red circle"])
        XCTAssertEqual(c["lambda"] as? Double, 0.3)
        XCTAssertEqual(c["erase_scale"] as? Double, 0.7)
        XCTAssertEqual(c["preserve_scale"] as? Double, 0.2)
        XCTAssertEqual(c["technique"] as? String, "tensor")
    }

    func testBadInputIsOneLineAndWritesNothing() throws {
        func refused(_ extra: [String], _ expected: String, line: UInt = #line) throws {
            let out = dir + "/bad-\(UUID().uuidString)"
            let result = try uce(out, extra)
            XCTAssertNotEqual(result.status, 0, line: line)
            let errors = result.stderr.split(separator: "\n").filter { $0.hasPrefix("Error:") }
            XCTAssertEqual(errors.count, 1, result.stderr, line: line)
            XCTAssertTrue(result.stderr.contains(expected), result.stderr, line: line)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), line: line)
        }
        try refused(["--uce-lambda", "-1"], "--uce-lambda must be a finite number >= 0")
        try refused(["--uce-erase", " "], "--uce-erase must not be empty")
        try refused(
            ["--uce-preserve", "a", "--uce-preserve", ""], "an empty prompt is kept anyway")
        try refused(["--uce-technique", "project"], "--uce-technique")
        try refused(["--pairs", dir], "--pairs is an option of --method duo, not uce")
        try refused(
            ["--uce-guide", "a", "--uce-guide", "b", "--uce-guide", "c"],
            "Error: UCE: --uce-guide given 3 times for 2 erased concept(s)")
        try refused(
            ["--uce-lambda", "0", "--uce-erase-scale", "0", "--uce-preserve-scale", "0"],
            "UCE: the system is not positive definite")
        try FileManager.default.createDirectory(
            atPath: dir + "/foreign", withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: dir + "/foreign/notes.txt", contents: Data())
        let foreign = try uce(dir + "/foreign")
        XCTAssertNotEqual(foreign.status, 0)
        XCTAssertTrue(foreign.stderr.contains("does not write (notes.txt)"), foreign.stderr)
    }
}
