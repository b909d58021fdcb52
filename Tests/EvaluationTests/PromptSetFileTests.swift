import Concepts
import Evaluation
import Foundation
import XCTest

final class PromptSetFileTests: XCTestCase {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent(
        "prompts-\(getpid()).txt"
    ).path

    func testPromptsReadBackAsWritten() throws {
        let prompts = ["a zebra circle", "two  tiger squares # not a comment here"]
        try PromptSetFile.write(prompts, header: "made by a test\nsecond line", to: path)
        XCTAssertEqual(try PromptSetFile.read(path), prompts)
    }

    func testAPromptThatWouldNotReadBackIsRefusedAndNothingIsWritten() {
        try? FileManager.default.removeItem(atPath: path)
        for bad in ["# zebra tiger", "  ", "zebra\ntiger", "zebra\u{85}tiger"] {
            XCTAssertThrowsError(try PromptSetFile.write(["fine", bad], header: "h", to: path)) {
                XCTAssertTrue("\($0)".hasPrefix(path + ": cannot hold the prompt"), "\($0)")
                XCTAssertFalse("\($0)".contains("\n"), "one line: \($0)")
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: path))
        }
    }

    /// A binary file given as a set was read as prompts of replacement characters.
    func testAFileThatIsNotTextIsRefused() throws {
        defer { try? FileManager.default.removeItem(atPath: path) }
        for bytes: [UInt8] in [[0x61, 0xFF, 0xFE, 0x0A, 0x62], [0x61, 0x00, 0x62]] {
            FileManager.default.createFile(atPath: path, contents: Data(bytes))
            XCTAssertThrowsError(try PromptSetFile.read(path)) {
                XCTAssertEqual("\($0)", path + ": is not UTF-8 text")
            }
        }
    }
}
