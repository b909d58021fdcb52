import Concepts
import Formats
import Foundation
import XCTest

/// CSV prompt sets in the two published layouts, written by Python's csv module
/// (Fixtures/prompt-sets): I2P's columns, and UnlearnDiffAtk's (a leading unnamed index,
/// evaluation_seed / evaluation_guidance, case_number, CRLF line ends). The rows hold the
/// cases a hand-written reader gets wrong: commas, doubled quotes and a line break inside
/// quoted fields, an empty field, and a seed pandas wrote as a float.
final class PromptSetCSVTests: XCTestCase {
    static let folder = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
        .appendingPathComponent("prompt-sets").path

    func testI2PLayoutGivesEachRowItsSeedGuidanceSizeAndLabels() throws {
        let (rows, columns) = try PromptSetFile.rows(Self.folder + "/i2p-layout.csv")
        XCTAssertEqual(
            rows.map(\.prompt),
            [
                "a portrait of a knight, oil painting, \"dramatic\" light",
                "a beach at sunset\nwith two figures", "a red car in the rain",
                "an abandoned hospital corridor",
            ])
        XCTAssertEqual(rows.map(\.seed), [2_734_971_755, 1_027_428_212, 5, 3_551_218_212])
        XCTAssertEqual(rows.map(\.guidance), [7, 9.5, 7.5, 6])
        XCTAssertEqual(rows.map(\.width), [512, 512, 512, 512])
        XCTAssertEqual(rows.map(\.height), [512, 768, 512, 512])
        XCTAssertEqual(
            rows.map(\.categories),
            [["violence", "shocking"], ["sexual"], [], ["shocking", "sexual"]])
        XCTAssertEqual(rows.map(\.nudityPercentage), [10, 70, 0, 55])
        XCTAssertEqual(rows.map(\.caseNumber), [nil, nil, nil, nil])
        XCTAssertTrue(columns.contains("sd_seed") && columns.contains("nudity_percentage"))
    }

    func testUnlearnDiffAtkLayoutReadsEvaluationSeedGuidanceAndCaseNumber() throws {
        let (rows, _) = try PromptSetFile.rows(Self.folder + "/unlearndiffatk-layout.csv")
        XCTAssertEqual(rows.count, 3)
        XCTAssertEqual(rows[1].prompt, "a beach at sunset\nwith two figures")
        XCTAssertEqual(rows.map(\.seed), [2_734_971_755, 1_027_428_212, 5])
        XCTAssertEqual(rows.map(\.guidance), [7, 9.5, 7.5])
        XCTAssertEqual(rows.map(\.caseNumber), ["100", "101", "102"])
        XCTAssertEqual(
            try PromptSetFile.read(Self.folder + "/unlearndiffatk-layout.csv"),
            rows.map(\.prompt))
    }

    func testFiltersKeepRowsByCategoryAndNudityPercentage() throws {
        let (rows, columns) = try PromptSetFile.rows(Self.folder + "/i2p-layout.csv")
        let sexual = PromptFilter(categories: ["Sexual"])
        XCTAssertTrue(sexual.applies(to: columns))
        XCTAssertEqual(sexual.apply(rows).map(\.seed), [1_027_428_212, 3_551_218_212])
        let nude = PromptFilter(minimumNudityPercentage: 60)
        XCTAssertEqual(nude.apply(rows).map(\.seed), [1_027_428_212])
        let both = PromptFilter(categories: ["violence", "shocking"], minimumNudityPercentage: 50)
        XCTAssertEqual(both.apply(rows).map(\.seed), [3_551_218_212])
        // A plain text set has no labels: the filter leaves it whole.
        XCTAssertFalse(sexual.applies(to: ["prompt"]))
    }

    func testMalformedTablesNameTheFileLineAndColumn() throws {
        let folder = NSTemporaryDirectory() + "duo-csv-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let cases: [(String, String)] = [
            ("text,sd_seed\na,1\n", "no 'prompt' column"),
            ("prompt,sd_seed\na,1\nb,-3\n", ":3: column 'sd_seed' holds \"-3\""),
            ("prompt,evaluation_guidance\na,nan\n", ":2: column 'evaluation_guidance'"),
            ("prompt,sd_image_width\na,0\n", "column 'sd_image_width' holds \"0\""),
            ("prompt,sd_seed\n\"a, b,1\n", ":2: a quoted field is never closed"),
            ("prompt,sd_seed\na,1,2\n", ":2: 3 fields, the header has 2"),
            ("prompt,prompt\na,b\n", "names column 'prompt' twice"),
            ("prompt\n\n", "holds no prompts"),
        ]
        for (i, (text, expected)) in cases.enumerated() {
            let path = folder + "/set\(i).csv"
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try PromptSetFile.rows(path), text.debugDescription) {
                let message = "\($0)"
                XCTAssertTrue(
                    message.contains(path) && message.contains(expected),
                    "\(message) should name \(path) and say \(expected)")
                XCTAssertFalse(message.contains("\n"), "one line: \(message)")
            }
        }
    }
}
