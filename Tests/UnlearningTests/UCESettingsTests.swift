import Concepts
import XCTest

@testable import Unlearning

/// Where a UCE run's settings come from: options, then the concept file's `[uce]` table,
/// then the erase script's defaults (the concept's explicit words towards the empty
/// prompt, λ 0.5, scales 1 and max(0.1, 1/(1 + preserved)), 'replace').
final class UCESettingsTests: XCTestCase {
    func concept(_ table: String = "") throws -> ConceptFile {
        try ConceptFile(
            parsing: """
                name = "dots"
                description = "dots"
                kind = "object"
                [words]
                explicit = ["dotted", "dots"]
                synonyms = ["spotted"]
                implicit = ["leopard"]
                [prompts]
                unsafe = ["dotted"]
                safe = ["plain"]
                \(table)
                """, path: "dots.toml")
    }

    func testTheDefaultsAreTheEraseScripts() throws {
        let s = try UCESettings.merged(concept: try concept(), options: .init())
        XCTAssertEqual(s.erase, ["dotted", "dots"])
        XCTAssertEqual(s.guide, ["", ""])
        XCTAssertEqual(s.preserve, [])
        XCTAssertEqual(s.lambda, 0.5)
        XCTAssertEqual(s.eraseScale, 1)
        XCTAssertEqual(s.resolvedPreserveScale, 1, "max(0.1, 1/1): the empty prompt alone")
        XCTAssertEqual(s.technique, .replace)
        var many = s
        many.preserve = Array(repeating: "x", count: 20)
        XCTAssertEqual(many.resolvedPreserveScale, 0.1, "max(0.1, 1/21)")
        many.preserve = ["x", "y", "z"]
        XCTAssertEqual(many.resolvedPreserveScale, 0.25)
    }

    func testOptionsWinOverTheTableWhichWinsOverTheDefaults() throws {
        let file = try concept(
            """
            [uce]
            erase = ["spots"]
            guide = ["plain"]
            preserve = ["a cat"]
            lambda = 0.1
            technique = "tensor"
            """)
        let fromTable = try UCESettings.merged(concept: file, options: .init())
        XCTAssertEqual(fromTable.erase, ["spots"])
        XCTAssertEqual(fromTable.guide, ["plain"])
        XCTAssertEqual(fromTable.preserve, ["a cat"])
        XCTAssertEqual(fromTable.lambda, 0.1)
        XCTAssertEqual(fromTable.eraseScale, 1)
        XCTAssertEqual(fromTable.technique, .tensor)
        var o = UCESettings.Overrides()
        o.erase = ["a", "b"]
        o.guide = ["c"]
        o.lambda = 0.7
        o.technique = .replace
        XCTAssertEqual(try UCESettings.merged(concept: file, options: o).preserve, ["a cat"])
        o.preserve = []
        XCTAssertEqual(
            try UCESettings.merged(concept: file, options: o).preserve, [],
            "an empty list given keeps the empty prompt alone")
        o.preserve = nil
        let fromOptions = try UCESettings.merged(concept: file, options: o)
        XCTAssertEqual(fromOptions.erase, ["a", "b"])
        XCTAssertEqual(fromOptions.guide, ["c", "c"], "one guide stands for every erased concept")
        XCTAssertEqual(fromOptions.preserve, ["a cat"])
        XCTAssertEqual(fromOptions.lambda, 0.7)
        XCTAssertEqual(fromOptions.technique, .replace)
        o.guide = ["c", "d", "e"]
        XCTAssertThrowsError(try UCESettings.merged(concept: file, options: o)) {
            XCTAssertEqual(
                "\($0)",
                "UCE: --uce-guide given 3 times for 2 erased concept(s) (give it once, or once per erased concept)"
            )
        }
    }
}
