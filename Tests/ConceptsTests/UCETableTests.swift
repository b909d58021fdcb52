import Concepts
import XCTest

/// A concept file's `[uce]` table (`duo unlearn --method uce`'s concepts and weights).
final class UCETableTests: XCTestCase {
    static let table = """

        [uce]
        erase = ["dotted", "dots"]
        guide = [""]
        preserve = ["a red circle"]
        lambda = 0.25
        erase_scale = 2
        preserve_scale = 0.5
        technique = "tensor"
        """

    func testTheTableSetsOnlyTheKeysItGives() throws {
        let file = try ConceptFile(parsing: ConceptFileTests.valid + Self.table, path: "dots.toml")
        XCTAssertEqual(file.uce.erase, ["dotted", "dots"])
        XCTAssertEqual(file.uce.guide, [""])
        XCTAssertEqual(file.uce.preserve, ["a red circle"])
        XCTAssertEqual(file.uce.lambda, 0.25)
        XCTAssertEqual(file.uce.eraseScale, 2)
        XCTAssertEqual(file.uce.preserveScale, 0.5)
        XCTAssertEqual(file.uce.technique, "tensor")
        let bare = try ConceptFile(parsing: ConceptFileTests.valid, path: "dots.toml")
        XCTAssertEqual(bare.uce, ConceptFile.UCEDefaults())
    }

    func testErrorsNameTheKey() {
        func assertError(_ from: String, _ to: String, _ expected: String, line: UInt = #line) {
            let text = ConceptFileTests.valid + Self.table.replacingOccurrences(of: from, with: to)
            XCTAssertThrowsError(try ConceptFile(parsing: text, path: "bad.toml"), line: line) {
                XCTAssertEqual("\($0)", expected, line: line)
            }
        }
        assertError(
            "technique = \"tensor\"", "technique = \"project\"",
            "bad.toml:24: key 'uce.technique': expected one of replace, tensor, found 'project'")
        assertError(
            "erase = [\"dotted\", \"dots\"]", "erase = [\"dotted\", \" \"]",
            "bad.toml:18: key 'uce.erase': holds an empty prompt")
        assertError(
            "erase = [\"dotted\", \"dots\"]", "erase = []",
            "bad.toml:18: key 'uce.erase': must not be empty")
        assertError(
            "lambda = 0.25", "lambda = -1",
            "bad.toml:21: key 'uce.lambda': expected 0.0 to 1000000000.0, found -1.0")
        assertError("technique", "tecnique", "bad.toml:24: key 'uce.tecnique': unknown key")
    }
}
