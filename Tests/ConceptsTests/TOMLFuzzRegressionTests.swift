import Concepts
import Formats
import XCTest

/// Concept files that crashed concept-file reading (spotted while writing fuzz-concept for
/// `make fuzz`, confirmed with that harness); each must now be refused with a one-line error
/// naming the file, line and key.
final class TOMLFuzzRegressionTests: XCTestCase {
    private func assertRefused(
        _ settings: String, _ parts: [String], line: UInt = #line
    ) {
        let text = ConceptFileTests.valid + "\n[synthesis]\n" + settings + "\n"
        XCTAssertThrowsError(try ConceptFile(parsing: text, path: "bad.toml"), line: line) {
            let message = "\($0)"
            XCTAssertFalse(message.contains("\n"), "one line: \(message)", line: line)
            for part in ["bad.toml:", "key 'synthesis.steps'"] + parts {
                XCTAssertTrue(message.contains(part), "says \(part): \(message)", line: line)
            }
        }
    }

    /// An integer beyond Int's range was read as a Double; the concept file's range error
    /// then converted it back with Int(_:), which traps.
    func testIntegerBeyondIntIsRefused() {
        assertRefused(
            "steps = 100000000000000000000",
            ["integer '100000000000000000000' is out of range", "2^53"])
    }

    /// Int.max itself rounds up to 2^63 as a Double, one past what Int(_:) accepts.
    func testIntMaxIsRefused() {
        assertRefused("steps = 9223372036854775807", ["out of range"])
        assertRefused("steps = -9_223_372_036_854_775_808", ["out of range"])
    }

    /// Integers are kept while a Double holds them exactly (TOML: losslessly or not at all).
    func testIntegersUpTo2To53AreKept() throws {
        let document = try TOMLDocument(
            parsing: "a = 9007199254740992\nb = -9_007_199_254_740_992\n", path: "ok.toml")
        XCTAssertEqual(document.values["a"], .number(9_007_199_254_740_992, isInteger: true))
        XCTAssertEqual(document.values["b"], .number(-9_007_199_254_740_992, isInteger: true))
        XCTAssertThrowsError(try TOMLDocument(parsing: "a = 9007199254740993\n", path: "big.toml"))
        {
            XCTAssertEqual(
                "\($0)",
                "big.toml:1: key 'a': integer '9007199254740993' is out of range "
                    + "(at most 2^53 in magnitude)")
        }
    }
}
