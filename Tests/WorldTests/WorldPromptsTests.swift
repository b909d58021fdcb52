import Concepts
import Foundation
import Unlearning
import XCTest

@testable import World

/// The world's side of concept files: its shipped files, and templates filled from its
/// scenes (`WorldPrompts`).
final class WorldPromptsTests: XCTestCase {
    /// The concept files that ship with duo, in the World module's resource bundle.
    static let conceptsFolder = URL(fileURLWithPath: try! ShippedConcepts.directory())

    func load(_ concept: Concept) throws -> ConceptFile {
        let path = Self.conceptsFolder.appendingPathComponent("\(concept.rawValue).toml").path
        return try ConceptFile(contentsOf: path)
    }

    static let valid = """
        name = "dots"
        description = "dots"
        kind = "object"

        [words]
        explicit = ["dotted", "dots",]
        synonyms = ["spotted"]
        implicit = ["leopard"]

        [prompts]
        unsafe = ["{count} dotted {shape}"]
        safe = ["{count} {shape}"]
        """

    func pairs(_ file: ConceptFile, count: Int, seed: UInt64) -> [ScenePromptPair] {
        file.scenePromptPairs(count: count, seed: seed)
    }

    func testShippedConceptFilesMatchTheWorld() throws {
        for concept in Concept.allCases {
            let file = try load(concept)
            XCTAssertEqual(file.name, concept.rawValue)
            XCTAssertGreaterThanOrEqual(file.explicitWords.count, 2)
            XCTAssertGreaterThanOrEqual(file.synonyms.count, 1)
            XCTAssertGreaterThanOrEqual(file.implicitTriggers.count, 1)
            XCTAssertEqual(file.explicitWords, concept.words(.explicit))
            XCTAssertEqual(file.synonyms, concept.words(.synonym))
            XCTAssertEqual(file.implicitTriggers, concept.words(.implicit))
            XCTAssertEqual(file.kind, concept == .stripes ? "attribute" : "object")
        }
    }

    /// Filled templates are world captions: unsafe brings the concept explicitly, safe is
    /// the same caption without it, keep prompts leave this concept out.
    func testPromptPairsAreWorldCaptions() throws {
        for concept in Concept.allCases {
            let file = try load(concept)
            for scenePair in pairs(file, count: 100, seed: 4) {
                let pair = scenePair.prompts
                let unsafe = try Captions.parse(pair.unsafe)
                let safe = try Captions.parse(pair.safe)
                XCTAssertEqual(
                    unsafe.stripes == nil ? unsafe.splatter?.kind : unsafe.stripes?.kind, .explicit)
                XCTAssertTrue(unsafe.has(concept), pair.unsafe)
                XCTAssertFalse(safe.has(.stripes) || safe.has(.splatter), pair.safe)
                XCTAssertEqual(safe, ParsedCaption(scenePair.scene.content))
                var stripped = unsafe
                if concept == .stripes { stripped.stripes = nil } else { stripped.splatter = nil }
                XCTAssertEqual(stripped, safe)
            }
            for template in file.keepPrompts {
                let content = World().scene(key: World.key(seed: 1, index: 0)).content
                let keep = try Captions.parse(WorldTemplate.fill(template, with: content))
                XCTAssertFalse(keep.has(concept), template)
            }
        }
    }

    func testPromptsSizeChoosesThePairsScenes() throws {
        let large = try ConceptFile(
            parsing: Self.valid.replacingOccurrences(
                of: "[prompts]", with: "[prompts]\nsize = \"large\""), path: "large.toml")
        XCTAssertEqual(large.pairSceneSize, "large")
        XCTAssertTrue(
            pairs(large, count: 40, seed: 2).allSatisfy {
                $0.scene.content.size == .large && $0.scene.content.count == 1
            })
        let stripes = try load(.stripes)
        XCTAssertNil(stripes.pairSceneSize, "concepts/stripes.toml draws scenes of every size")
        XCTAssertEqual(
            Set(pairs(stripes, count: 40, seed: 2).map(\.scene.content.size)),
            [.small, .large])
        var small = stripes
        small.pairSceneSize = "small"
        XCTAssertTrue(
            pairs(small, count: 40, seed: 2).allSatisfy { $0.scene.content.size == .small })
        XCTAssertNil(try load(.splatter).pairSceneSize)
        let huge = try ConceptFile(
            parsing: Self.valid.replacingOccurrences(
                of: "[prompts]", with: "[prompts]\nsize = \"huge\""), path: "bad.toml")
        XCTAssertThrowsError(try WorldPrompts().check(huge)) {
            XCTAssertEqual(
                "\($0)",
                "bad.toml:11: key 'prompts.size': expected one of small, large, found 'huge'")
        }
    }

    func testPromptPairsAreDeterministic() throws {
        let file = try load(.splatter)
        let filler = WorldPrompts()
        XCTAssertEqual(
            try filler.pairPrompts(file, count: 20, seed: 9),
            try filler.pairPrompts(file, count: 20, seed: 9))
        XCTAssertNotEqual(
            try filler.pairPrompts(file, count: 20, seed: 9),
            try filler.pairPrompts(file, count: 20, seed: 10))
    }

    func testAPlaceholderTheWorldDoesNotKnowIsRefusedNamingTheKey() throws {
        let file = try ConceptFile(
            parsing: Self.valid.replacingOccurrences(of: "{count} dotted", with: "{number} dotted"),
            path: "bad.toml")
        XCTAssertThrowsError(try WorldPrompts().pairPrompts(file, count: 1, seed: 0)) {
            XCTAssertEqual(
                "\($0)",
                "bad.toml:11: key 'prompts.unsafe': unknown placeholder '{number}' in "
                    + "\"{number} dotted {shape}\" (the world's: count, size, colour, shape, "
                    + "position, background)")
        }
        XCTAssertThrowsError(try PlainPrompts().check(file)) {
            XCTAssertTrue(
                "\($0)".hasPrefix("bad.toml:11: key 'prompts.unsafe': '{number}'"), "\($0)")
        }
    }

    func testABuiltinDetectorTheWorldLacksIsRefusedWithTheNamesItHas() throws {
        let file = try ConceptFile(
            parsing: Self.valid + "\n[detector]\nbuiltin = \"nudity\"\n", path: "bad.toml")
        XCTAssertThrowsError(try file.makeDetector(builtins: WorldDetectors())) {
            XCTAssertEqual(
                "\($0)",
                "bad.toml: no built-in detector for 'nudity' (built-in: stripes, splatter); "
                    + "name one in [detector] (builtin = NAME or command = \"CMD\")")
        }
        XCTAssertThrowsError(try file.makeDetector(builtins: nil)) {
            XCTAssertTrue("\($0)".contains("(this model has none)"), "\($0)")
        }
    }
}
