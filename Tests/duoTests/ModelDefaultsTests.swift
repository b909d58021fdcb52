import Formats
import Foundation
import World
import XCTest

/// A model folder's `duo_defaults.json` is data read the same way for every model: naming
/// the embedded model's folder with --model gives the run made without --model (before,
/// defaults were picked by whether --model was typed, and the two differed).
final class ModelDefaultsTests: XCTestCase {
    func testTheEmbeddedModelByPathGivesTheSameRunAsTheDefault() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent(
            "defaults-\(UUID())"
        ).path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let base = [
            "unlearn", "--concept", "stripes", "--pairs", UnlearnCommandTests.prepared.pairs,
            "--steps", "1",
            "--rank", "2", "--batch-size", "2", "--quiet",
        ]
        let byDefault = try runDuo(base + ["--out", root + "/default"])
        XCTAssertEqual(byDefault.status, 0, byDefault.stderr)
        // A copy of the embedded model elsewhere, as Sources/World/Resources/model in a checkout.
        let copy = root + "/model-copy"
        try FileManager.default.copyItem(atPath: try EmbeddedModel.shippedDirectory(), toPath: copy)
        let byPath = try runDuo(base + ["--model", copy, "--out", root + "/path"])
        XCTAssertEqual(byPath.status, 0, byPath.stderr)

        func config(_ run: String) throws -> [String: String] {
            let object =
                try JSONSerialization.jsonObject(
                    with: Data(contentsOf: URL(fileURLWithPath: root + "/\(run)/config.json")))
                as! [String: Any]
            return object.mapValues { "\($0)" }
        }
        XCTAssertEqual(try config("default"), try config("path"), "every setting alike")
        XCTAssertEqual(
            try config("path")["model"], "embedded", "named by its weights, not its path")
        XCTAssertEqual(
            try config("default")["prompted_share"], "1.0", "the embedded model's own default")
        XCTAssertEqual(
            try Data(contentsOf: URL(fileURLWithPath: root + "/default/adapter.safetensors")),
            try Data(contentsOf: URL(fileURLWithPath: root + "/path/adapter.safetensors")),
            "the same adapter, byte for byte")
    }

    func testPretrainingWritesTheShippedDefaultsIntoItsModel() throws {
        let shipped = try String(
            contentsOfFile: try EmbeddedModel.shippedDirectory() + "/duo_defaults.json",
            encoding: .utf8)
        XCTAssertEqual(
            try String(contentsOfFile: tinyWorldModel + "/duo_defaults.json", encoding: .utf8),
            shipped)
    }
}
