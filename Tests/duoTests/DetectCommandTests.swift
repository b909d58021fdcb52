import Formats
import Foundation
import TestSupport
import Unlearning
import World
import XCTest

/// `duo world detect`: one JSON line per image, the external detector protocol.
final class DetectCommandTests: XCTestCase {
    func testPrintsOneJSONLinePerImageAndFailsPerFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "duo-detect-\(UUID())"
        ).path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A plain gray 32x32 image: no object, no concept.
        try PNGImage(
            width: 32, height: 32, channels: 3, pixels: Array(repeating: 128, count: 32 * 32 * 3)
        )
        .write(to: dir + "/gray.png")
        try Data("not a png".utf8).write(to: URL(fileURLWithPath: dir + "/bad.png"))

        let result = try runDuo([
            "world", "detect", "--concept", "splatter", dir + "/gray.png", dir + "/bad.png",
        ])
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

        let unknown = try runDuo(["world", "detect", "--concept", "nudity", dir + "/gray.png"])
        XCTAssertNotEqual(unknown.status, 0)
        XCTAssertTrue(unknown.stderr.contains("unknown concept 'nudity'"), unknown.stderr)
    }

    /// `duo world detect -` as an external detector process gives the built-in detector's scores.
    func testServesTheLineProtocolAsAProcess() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
            "duo-serve-\(UUID())"
        ).path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let world = World()
        var images: [PNGImage] = []
        for (i, stripes) in [ConceptChoice.absent, .word(.explicit, "striped")].enumerated() {
            let scene = world.scene(
                key: World.key(seed: 3, index: i), stripes: stripes, splatter: .absent)
            images.append(world.png(scene))
        }
        let paths = try images.enumerated().map { i, image in
            let path = dir + "/\(i).png"
            try image.write(to: path)
            return path
        }
        let process = try DetectorProcess(
            command: "'\(try duoExecutable().path)' world detect --concept stripes -", timeout: 30)
        let external = try process.scores(paths: paths)
        let network = try WorldDetector.shipped()
        let builtin = try WorldConceptDetector(concept: .stripes, network: network).scores(
            paths: paths)
        XCTAssertEqual(external.count, 2)
        // The process prints scores to 6 decimals (half a unit of the last off at most) and
        // runs one image at a time where the built-in runs both: its GEMMs round differently,
        // the logit z moves by up to ρ of its size (at least 1, the scale of the features it
        // sums; Float32Rounding), and p = σ(z) by p(1 − p) times that.
        let rho = Double(Float32Rounding.network(weights: network.namedParameters.map(\.1)))
        for (a, b) in zip(external, builtin) {
            let logit = max(abs(log(b / (1 - b))), 1)
            XCTAssertEqual(a, b, accuracy: 0.5e-6 + b * (1 - b) * logit * rho)
        }
        XCTAssertLessThan(external[0], 0.5)
        XCTAssertGreaterThan(external[1], 0.5)
    }
}
