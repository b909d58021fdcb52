import Foundation
import Unlearning
import XCTest

/// The external detector line protocol, against small shell detectors.
final class DetectorProcessTests: XCTestCase {
    let paths = ["/images/a.png", "/images/b b.png", "/images/c.png"]

    func testScoresComeBackInOrderWhateverOrderTheyAreAnsweredIn() throws {
        // Answers every path, the last one first within the batch.
        let detector = try DetectorProcess(
            command: #"""
                while read a && read b && read c; do
                echo "{\"path\": \"$c\", \"score\": 0.25}"
                echo "{\"path\": \"$a\", \"scores\": {\"x\": 1}}"
                echo "{\"path\": \"$b\", \"score\": 0}"; done
                """#, timeout: 10)
        XCTAssertEqual(try detector.scores(paths: paths), [1, 0, 0.25])
        XCTAssertEqual(
            try detector.scores(paths: paths), [1, 0, 0.25], "the process serves every batch")
    }

    func assertFails(
        _ command: String, timeout: Double = 10, containing expected: String, line: UInt = #line
    ) {
        XCTAssertThrowsError(
            try DetectorProcess(command: command, timeout: timeout).scores(paths: paths), line: line
        ) {
            let message = "\($0)"
            XCTAssertTrue(message.contains(expected), message, line: line)
            XCTAssertFalse(message.contains("\n"), line: line)
        }
    }

    func testACrashHangOrGarbageIsAOneLineErrorNamingTheImage() {
        assertFails(
            "read p; exit 3", containing: "exited with status 3 before answering for /images/a.png")
        assertFails(
            "sleep 30", timeout: 0.5, containing: "gave no answer for /images/a.png within 0.5 s")
        assertFails(
            "read p; echo 'NSFW: yes'; sleep 5",
            containing: "malformed line while /images/a.png was waiting: \"NSFW: yes\"")
        assertFails(
            "read p; echo '{\"path\": \"/images/a.png\", \"score\": 7}'; sleep 5",
            containing: "malformed")
        assertFails(
            "read p; echo '{\"path\": \"/other.png\", \"score\": 1}'; sleep 5",
            containing: "not asked about")
    }
}
