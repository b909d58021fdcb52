import Foundation
import XCTest

@testable import World

final class ConceptFileTests: XCTestCase {
    /// The package's `concepts/` folder, found from this file's place in the repository.
    static let conceptsFolder = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("concepts")

    func load(_ concept: Concept) throws -> ConceptFile {
        let path = Self.conceptsFolder.appendingPathComponent("\(concept.rawValue).toml").path
        return try ConceptFile(contentsOf: path)
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
            for pair in file.promptPairs(count: 100, seed: 4) {
                let unsafe = try Captions.parse(pair.unsafe)
                let safe = try Captions.parse(pair.safe)
                XCTAssertEqual(
                    unsafe.stripes == nil ? unsafe.splatter?.kind : unsafe.stripes?.kind, .explicit)
                XCTAssertTrue(unsafe.has(concept), pair.unsafe)
                XCTAssertFalse(safe.has(.stripes) || safe.has(.splatter), pair.safe)
                XCTAssertEqual(safe, ParsedCaption(pair.scene.content))
                var stripped = unsafe
                if concept == .stripes { stripped.stripes = nil } else { stripped.splatter = nil }
                XCTAssertEqual(stripped, safe)
            }
            for template in file.keepPrompts {
                let content = World().scene(key: World.key(seed: 1, index: 0)).content
                let keep = try Captions.parse(PromptTemplate.fill(template, with: content))
                XCTAssertFalse(keep.has(concept), template)
            }
        }
    }

    func testPromptPairsAreDeterministic() throws {
        let file = try load(.splatter)
        XCTAssertEqual(file.promptPairs(count: 20, seed: 9), file.promptPairs(count: 20, seed: 9))
        XCTAssertNotEqual(
            file.promptPairs(count: 20, seed: 9), file.promptPairs(count: 20, seed: 10))
    }

    static let valid = """
        # a comment
        name = "dots"   # trailing comment
        description = "say \\"hi\\""
        kind = "object"

        [words]
        explicit = ["dotted", "dots",]
        synonyms = [
            "spotted",  # a comment inside
            "speckled"
        ]
        implicit = ["leopard"]

        [prompts]
        unsafe = ["{count} dotted {shape}"]
        safe = ["{count} {shape}"]
        """

    func testTheSubsetParses() throws {
        let file = try ConceptFile(parsing: Self.valid, path: "dots.toml")
        XCTAssertEqual(file.description, "say \"hi\"")
        XCTAssertEqual(file.explicitWords, ["dotted", "dots"])
        XCTAssertEqual(file.synonyms, ["spotted", "speckled"])
        XCTAssertEqual(file.keepPrompts, [])
        let crlf = Self.valid.replacingOccurrences(of: "\n", with: "\r\n")
        XCTAssertEqual(try ConceptFile(parsing: crlf, path: "dots.toml").synonyms, file.synonyms)
    }

    func assertError(
        _ text: String, _ expected: String, file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertThrowsError(
            try ConceptFile(parsing: text, path: "bad.toml"), file: file, line: line
        ) {
            let message = "\($0)"
            XCTAssertEqual(message, expected, file: file, line: line)
            XCTAssertFalse(message.contains("\n"), file: file, line: line)
        }
    }

    func testErrorsNameFileLineAndKey() {
        let valid = Self.valid
        assertError(
            valid.replacingOccurrences(of: "\"speckled\"", with: "speckled"),
            "bad.toml:10: key 'synonyms': expected a string in the array")
        assertError(
            valid.replacingOccurrences(of: "kind = \"object\"", with: "kind = 3"),
            "bad.toml:4: key 'kind': expected a string or an array of strings")
        assertError(
            valid.replacingOccurrences(
                of: "implicit = [\"leopard\"]", with: "implicit = \"leopard\""),
            "bad.toml:12: key 'words.implicit': expected an array of strings, found a string")
        assertError(
            valid.replacingOccurrences(of: "implicit = [\"leopard\"]\n", with: ""),
            "bad.toml:6: key 'words.implicit': missing")
        assertError(
            valid.replacingOccurrences(of: "safe = [\"{count} {shape}\"]", with: "safe = []"),
            "bad.toml:16: key 'prompts.safe': must not be empty")
        assertError(
            valid.replacingOccurrences(of: "{count} dotted", with: "{number} dotted"),
            "bad.toml:15: key 'prompts.unsafe': unknown placeholder '{number}' in "
                + "\"{number} dotted {shape}\"")
        assertError(valid + "\ncolour = \"red\"", "bad.toml:17: key 'prompts.colour': unknown key")
        assertError(
            valid.replacingOccurrences(of: "say \\\"hi\\\"\"", with: "say hi"),
            "bad.toml:3: key 'description': unterminated string")
        assertError("[words\n", "bad.toml:1: expected ']' after table name 'words'")
        assertError("name = \"a\"\nname = \"b\"\n", "bad.toml:2: key 'name': defined twice")
    }

    func testAMissingFileIsOneLine() {
        XCTAssertThrowsError(try ConceptFile(contentsOf: "/nonexistent/x.toml")) {
            XCTAssertEqual("\($0)", "/nonexistent/x.toml:0: cannot read the file")
        }
    }
}
