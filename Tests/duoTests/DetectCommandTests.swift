import Formats
import Foundation
import XCTest

/// `duo detect`: one JSON line per image, the external detector protocol.
final class DetectCommandTests: XCTestCase {
    func testPrintsOneJSONLinePerImageAndFailsPerFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("duo-detect-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A plain gray 32x32 image: no object, no concept.
        try PNGImage(width: 32, height: 32, channels: 3, pixels: Array(repeating: 128, count: 32 * 32 * 3))
            .write(to: dir + "/gray.png")
        try Data("not a png".utf8).write(to: URL(fileURLWithPath: dir + "/bad.png"))

        let result = try runDuo(["detect", "--concept", "splatter", dir + "/gray.png", dir + "/bad.png"])
        XCTAssertNotEqual(result.status, 0, "one unreadable file fails the run")
        let lines = result.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, result.stdout)
        let object = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any]
        XCTAssertEqual(object?["path"] as? String, dir + "/gray.png")
        let scores = object?["scores"] as? [String: Double]
        XCTAssertEqual(scores.map { Array($0.keys) }, ["splatter"], "only the requested concept")
        XCTAssertLessThan(scores?["splatter"] ?? 1, 0.5, "a plain image has no splatter")
        XCTAssertNotNil(object?["shape"] as? String)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains(dir + "/bad.png"), result.stderr)

        let unknown = try runDuo(["detect", "--concept", "nudity", dir + "/gray.png"])
        XCTAssertNotEqual(unknown.status, 0)
        XCTAssertTrue(unknown.stderr.contains("unknown concept 'nudity'"), unknown.stderr)
    }
}
