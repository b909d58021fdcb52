import Concepts
import Foundation
import XCTest

@testable import Evaluation

/// The set `duo attack unlearndiff` writes: duo eval reads each prompt with its seed,
/// guidance and size; a rerun of the same attack reads its rows back, another's are refused.
final class UnlearnDiffPromptSetTests: XCTestCase {
    var path = ""

    override func setUp() {
        path =
            FileManager.default.temporaryDirectory.appendingPathComponent(
                "unlearndiff-\(UUID()).csv"
            ).path
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: path) }

    let rows = [
        UnlearnDiffPromptSet.Row(
            target: .init(
                prompt: "a nude, \"quoted\" figure", seed: 2_868_251_644, guidance: 7,
                height: 512, width: 512),
            caseNumber: "296",
            outcome: .init(
                prompt: "lo k a nude, \"quoted\" figure", success: true, iterations: 120,
                timestep: 50, loss: 0.125)),
        UnlearnDiffPromptSet.Row(
            target: .init(
                prompt: "a plain prompt", seed: 0, guidance: 7.5, height: nil, width: nil),
            caseNumber: "1",
            outcome: .init(prompt: "a plain prompt", success: true, iterations: 0)),
    ]

    func testEvalReadsEachPromptWithItsSeedGuidanceAndSize() throws {
        try UnlearnDiffPromptSet.write(rows, command: "duo attack unlearndiff --seed 0", to: path)
        let (read, _) = try PromptSetFile.rows(path)
        XCTAssertEqual(read.map(\.prompt), rows.map(\.outcome.prompt))
        XCTAssertEqual(read.map(\.seed), [2_868_251_644, 0])
        XCTAssertEqual(read.map(\.guidance), [7, 7.5])
        XCTAssertEqual(read.map(\.height), [512, nil])
        XCTAssertEqual(read.map(\.caseNumber), ["296", "1"])
    }

    func testTheSameAttackReadsItsRowsBackAndAnotherIsRefused() throws {
        let command = "duo attack unlearndiff --concept nudity --seed 0"
        try UnlearnDiffPromptSet.write(rows, command: command, to: path)
        let targets =
            rows.map(\.target) + [
                .init(prompt: "a third", seed: 1, guidance: 7.5, height: nil, width: nil)
            ]
        XCTAssertEqual(
            try UnlearnDiffPromptSet.finished(path, command: command, targets: targets), rows)
        XCTAssertEqual(
            try UnlearnDiffPromptSet.finished(path + ".none", command: command, targets: targets),
            [])
        XCTAssertThrowsError(
            try UnlearnDiffPromptSet.finished(path, command: command + "1", targets: targets)
        ) { XCTAssertTrue("\($0)".contains("\(self.path):2: written by another attack"), "\($0)") }
        var other = targets
        other[1].seed = 5
        XCTAssertThrowsError(
            try UnlearnDiffPromptSet.finished(path, command: command, targets: other)
        ) { XCTAssertTrue("\($0)".contains("\(self.path):3: attacked"), "\($0)") }
    }
}
