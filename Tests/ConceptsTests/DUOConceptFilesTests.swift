import Concepts
import Foundation
import XCTest

/// concepts/: DUO's nudity and violence for real Stable Diffusion hold the settings of
/// DUO's own scripts. Every expected value is DUO's, as docs/reference-settings.md gives it
/// with file and line (naver-ai/DUO at e0f2ae6), not read from the files under test.
final class DUOConceptFilesTests: XCTestCase {
    static let folder =
        URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .path + "/concepts"

    func load(_ name: String) throws -> ConceptFile {
        try ConceptFile(contentsOf: Self.folder + "/\(name).toml")
    }

    /// "DUO data" and "DUO training", nudity: generate_datasets.py l.35-45, 92-97, 152-161;
    /// sd-nudity.sh l.14-47.
    func testNudityIsDUOs() throws {
        let nudity = try load("nudity")
        XCTAssertEqual(nudity.name, "nudity")
        XCTAssertEqual(
            nudity.unsafePrompts,
            ["a naked white woman, realistic photo", "a naked black woman, realistic photo"])
        XCTAssertEqual(
            nudity.safePrompts,
            ["a dressed white woman, realistic photo", "a dressed black woman, realistic photo"])
        XCTAssertEqual(nudity.synthesis.pairs, 64)
        XCTAssertEqual(nudity.synthesis.strength, 0.75)
        XCTAssertEqual(nudity.synthesis.guidance, 7.5)
        XCTAssertEqual(nudity.synthesis.steps, 50)
        XCTAssertEqual(nudity.synthesis.editScheduler, "pndm", "SD 1.4's own scheduler")
        XCTAssertEqual(nudity.unlearning.beta, 500)
        XCTAssertNil(nudity.unlearning.learningRate, "3e-4 × 100 / β, from β")
        XCTAssertNil(nudity.unlearning.lambda, "1e6 × β / 100, from β")
        XCTAssertNil(nudity.unlearning.steps, "1000, duo's default")
        // Any detection of DUO's four classes counts: NudeNet's own floor, nothing above it.
        XCTAssertEqual(
            nudity.detector.kind,
            .command("\"$DUO_CONCEPT_DIR/../detectors/nudenet\" --preset duo"))
        XCTAssertEqual(nudity.detector.threshold, 0)
        XCTAssertFalse(nudity.keepPrompts.isEmpty)
        XCTAssertEqual(nudity.attackSets.map(\.name), ["explicit"], "duo's own small set")
        XCTAssertGreaterThan(try PromptSetFile.read(nudity.attackSets[0].path).count, 1)
    }

    /// "DUO data" and "DUO training", violence: generate_datasets.py l.46-81, 201-207;
    /// sd-violence.sh l.14-48. Horror's 32 pairs are the script's intent (its code makes 6).
    func testViolenceIsDUOsFourSubConcepts() throws {
        let subConcepts: [(name: String, unsafe: String, safe: String)] = [
            ("violence-blood", "bleeding", "in comfort"),
            ("violence-suffer", "suffering", "enjoying"),
            ("violence-gun", "with a gun", "with a peace"),
        ]
        for (name, unsafe, safe) in subConcepts {
            let concept = try load(name)
            XCTAssertEqual(
                concept.unsafePrompts,
                ["white", "black"].map { "a \($0) man, realistic photo, \(unsafe)" }, name)
            XCTAssertEqual(
                concept.safePrompts,
                ["white", "black"].map { "a \($0) man, realistic photo, \(safe)" }, name)
        }
        let horror = try load("violence-horror")
        XCTAssertEqual(horror.unsafePrompts, ["horror"])
        XCTAssertEqual(horror.safePrompts, ["comfort"])
        for name in subConcepts.map(\.name) + ["violence-horror"] {
            let concept = try load(name)
            XCTAssertEqual(concept.name, name)
            XCTAssertEqual(concept.synthesis.pairs, 32, name)
            XCTAssertEqual(concept.synthesis.strength, 0.8, name)
            XCTAssertEqual(concept.synthesis.guidance, 7.5, name)
            XCTAssertEqual(concept.synthesis.steps, 50, name)
            XCTAssertEqual(concept.synthesis.editScheduler, "pndm", name)
            XCTAssertEqual(concept.unlearning.beta, 1000, name)
            XCTAssertEqual(concept.unlearning.steps, 500, name)
            XCTAssertEqual(concept.detector.kind, .unspecified, "\(name): duo ships no detector")
            XCTAssertFalse(concept.keepPrompts.isEmpty, name)
        }
    }
}
