import Formats
import XCTest

/// `CSVTable.text` writes what the reader reads back field for field, as RFC 4180 quotes it.
final class CSVTableWritingTests: XCTestCase {
    func testEveryFieldReadsBackAsWritten() throws {
        let rows = [
            ["plain", "a, comma", "say \"hi\""],
            ["two\nlines", " leading blank", "trailing blank "],
            ["", "", "crlf\r\ninside"],
        ]
        let text = CSVTable(columns: ["a", "b", "c"], rows: rows).text
        XCTAssertEqual(
            text.split(separator: "\n", maxSplits: 1).first, "a,b,c", "the header as given")
        XCTAssertTrue(text.contains("\"say \"\"hi\"\"\""), text)
        let read = try CSVTable(parsing: text, path: "t.csv")
        XCTAssertEqual(read.columns, ["a", "b", "c"])
        XCTAssertEqual(read.rows, rows)
    }
}
