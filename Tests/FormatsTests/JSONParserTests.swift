import XCTest

@testable import Formats

/// The header parser: strictness matters because its verdict decides whether a file is used.
final class JSONParserTests: XCTestCase {
    private func parse(_ text: String) throws -> JSONValue {
        try JSONParser.parse(Array(text.utf8))
    }

    func testEscapesAndSurrogatePairs() throws {
        guard case .string(let text) = try parse(#" "a\"b\\c\/\n\t\u00e9\ud83d\ude00" "#) else {
            return XCTFail("not a string")
        }
        XCTAssertEqual(text, "a\"b\\c/\n\té😀")
    }

    func testNumbersKeepTheirText() throws {
        guard case .array(let values) = try parse("[0, -12, 2.0, 1e3, 18446744073709551616]"),
            values.count == 5
        else { return XCTFail("not a 5-element array") }
        let texts = values.map { value -> String in
            if case .number(let text) = value { return text }
            return "?"
        }
        XCTAssertEqual(texts, ["0", "-12", "2.0", "1e3", "18446744073709551616"])
    }

    func testRejectsWhatRFC8259Rejects() {
        let bad = [
            "", "{", "[1,]", "{\"a\":1,}", "01", "1.", "-", "\"\u{01}\"", "\"\\x\"",
            "\"\\ud800\"", "{\"a\" 1}", "{\"a\":1}x", "tru", "{\"a\":1,\"a\":2}", "'a'",
        ]
        for text in bad {
            XCTAssertThrowsError(try parse(text), "accepted: \(text.debugDescription)")
        }
        let deep = String(repeating: "[", count: 1000) + String(repeating: "]", count: 1000)
        XCTAssertThrowsError(try parse(deep), "nesting must be bounded")
    }

    func testQuotingRoundTrips() throws {
        let text = "q\"b\\s\n\t\u{01}é"
        guard case .string(let back) = try parse(jsonQuoted(text)) else {
            return XCTFail("not a string")
        }
        XCTAssertEqual(back, text)
    }
}
