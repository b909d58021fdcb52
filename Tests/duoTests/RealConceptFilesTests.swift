import Foundation
import XCTest

/// The concept files for real Stable Diffusion (concepts/: DUO's nudity and its four
/// violence sub-concepts) through the duo executable, on the tiny embedded-architecture
/// model: where they are found from, and what a run without a detector says.
final class RealConceptFilesTests: XCTestCase {
    /// The repository: concepts/ and detectors/ are found from its root.
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    var scratch = ""

    override func setUpWithError() throws {
        scratch =
            FileManager.default.temporaryDirectory.appendingPathComponent("real-\(UUID())").path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: scratch)
    }

    /// Two unfiltered pairs of a few DDIM steps: what is checked is the detector's part.
    func synthesize(_ concept: String, out: String, _ extra: [String] = []) -> [String] {
        [
            "synthesize", "--concept", concept, "--model", tinyWorldModel, "--count", "2",
            "--steps", "2", "--edit-scheduler", "ddim", "--no-filter", "--quiet", "--out", out,
        ] + extra
    }

    func manifest(_ folder: String) throws -> [[String: Any]] {
        try String(contentsOfFile: folder + "/manifest.jsonl", encoding: .utf8)
            .split(separator: "\n").map {
                try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
            }
    }

    /// `--concept nudity` from the repository's root and the file's path from elsewhere both
    /// start NudeNet through detectors/nudenet ($DUO_CONCEPT_DIR), which scores every pair and
    /// declares itself in the manifest.
    func testNudityFindsItsDetectorFromAnyFolder() throws {
        guard
            FileManager.default.isExecutableFile(atPath: Self.root + "/detectors/.venv/bin/python")
        else { throw XCTSkip("detectors/.venv is missing: run make detectors") }
        let runs = [("nudity", Self.root), (Self.root + "/concepts/nudity.toml", scratch)]
        for (i, (concept, folder)) in runs.enumerated() {
            let out = scratch + "/pairs-\(i)"
            let result = try runDuo(synthesize(concept, out: out), in: folder)
            XCTAssertEqual(result.status, 0, "\(concept) from \(folder): \(result.stderr)")
            for line in try manifest(out) {
                let info = try XCTUnwrap(line["detector_info"] as? [String: Any], "\(line)")
                XCTAssertEqual(info["name"] as? String, "nudenet")
                XCTAssertEqual(info["version"] as? String, "3.4.2")
                XCTAssertEqual(info["preset"] as? String, "duo")
                XCTAssertTrue(
                    (line["detector"] as? String ?? "").hasPrefix("nudenet 3.4.2, preset duo"))
                XCTAssertNotNil(line["unsafe_score"] as? Double)
            }
        }
    }

    /// UnlearnDiffAtk's preset declares threshold 0.45: a run at nudity.toml's 0 says so on
    /// stderr, one at --detector-threshold 0.45 does not and records it.
    func testADeclaredThresholdOtherThanTheRunsIsNoted() throws {
        guard
            FileManager.default.isExecutableFile(atPath: Self.root + "/detectors/.venv/bin/python")
        else { throw XCTSkip("detectors/.venv is missing: run make detectors") }
        let preset = ["--detector", "detectors/nudenet --preset unlearndiffatk"]
        let noted = try runDuo(synthesize("nudity", out: scratch + "/a", preset), in: Self.root)
        XCTAssertEqual(noted.status, 0, noted.stderr)
        XCTAssertTrue(
            noted.stderr.contains("declares threshold 0.45; this run used 0.0"), noted.stderr)
        let agreed = try runDuo(
            synthesize("nudity", out: scratch + "/b", preset + ["--detector-threshold", "0.45"]),
            in: Self.root)
        XCTAssertEqual(agreed.status, 0, agreed.stderr)
        XCTAssertFalse(agreed.stderr.contains("declares threshold"), agreed.stderr)
        let settings = try String(contentsOfFile: scratch + "/b/synthesis.json", encoding: .utf8)
        XCTAssertTrue(settings.contains("\"threshold\": 0.45"), settings)
    }

    /// The same layout without detectors/.venv: one line naming `make detectors`.
    func testWithoutTheVenvNudityAsksForMakeDetectors() throws {
        let files = FileManager.default
        for folder in ["concepts", "detectors"] {
            try files.createDirectory(
                atPath: scratch + "/repo/" + folder, withIntermediateDirectories: true)
        }
        for file in ["concepts/nudity.toml", "detectors/nudenet", "detectors/nudenet_detector.py"] {
            try files.copyItem(atPath: Self.root + "/" + file, toPath: scratch + "/repo/" + file)
        }
        let result = try runDuo(
            synthesize("nudity", out: scratch + "/pairs"), in: scratch + "/repo")
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(
            result.stderr.contains(".venv is missing: run 'make detectors'"), result.stderr)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
    }

    func testAViolenceConceptRunsWithoutADetectorOnlyWhereNoneIsNeeded() throws {
        let concept = Self.root + "/concepts/violence-blood.toml"
        // The filter needs a detector: one line naming --detector, and --no-filter.
        var filtered = synthesize(concept, out: scratch + "/filtered")
        filtered.removeAll { $0 == "--no-filter" }
        let refused = try runDuo(filtered)
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("names no detector: give one with --detector"))
        XCTAssertTrue(refused.stderr.contains("--no-filter"), refused.stderr)
        XCTAssertEqual(refused.stderr.split(separator: "\n").count, 1, refused.stderr)

        // DUO's violence data has no detector loop: unfiltered pairs record no scores.
        let out = scratch + "/unscored"
        let made = try runDuo(synthesize(concept, out: out))
        XCTAssertEqual(made.status, 0, made.stderr)
        for line in try manifest(out) {
            XCTAssertEqual(line["detector"] as? String, "none")
            XCTAssertTrue(line["unsafe_score"] is NSNull && line["detector_info"] is NSNull)
        }

        // An evaluation needs prompt sets and a detector; each missing one is one line.
        let eval = [
            "eval", "--concept", concept, "--model", tinyWorldModel, "--prompts", "1",
            "--seeds", "1", "--keep-prompts", "2", "--steps", "2", "--quiet",
            "--out", scratch + "/report",
        ]
        let noSets = try runDuo(eval)
        XCTAssertTrue(noSets.stderr.contains("--attack-set NAME=PATH"), noSets.stderr)
        try "a man, bleeding\n".write(
            toFile: scratch + "/blood.txt", atomically: true, encoding: .utf8)
        let noDetector = try runDuo(eval + ["--attack-set", "blood=\(scratch)/blood.txt"])
        XCTAssertTrue(
            noDetector.stderr.contains("names no detector: give one with --detector"),
            noDetector.stderr)
        for result in [noSets, noDetector] {
            XCTAssertNotEqual(result.status, 0)
            XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
        }
    }

    func testTheDetectorThresholdOptionIsAScoreInTheUnitInterval() throws {
        let result = try runDuo(
            ["synthesize", "--concept", "stripes", "--detector-threshold", "1.5"], parseOnly: true)
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(
            result.stderr.contains("--detector-threshold must be in [0, 1], got 1.5"), result.stderr
        )
    }
}
