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

    func testADeclarationLineIsRecordedAndFoldedIntoTheIdentity() throws {
        let command = #"""
            echo '{"detector": {"name": "scripted", "version": "2.1", "preset": "strict", "threshold": 0.45, "classes": ["A", "B"], "extra": {"x": 1}}}'
            while read p; do echo "{\"path\": \"$p\", \"score\": 0.5}"; done
            """#
        let detector = try DetectorProcess(command: command, timeout: 10)
        XCTAssertNil(detector.declaration, "known once the detector has answered")
        XCTAssertEqual(detector.identity, command)
        XCTAssertEqual(try detector.scores(paths: paths), [0.5, 0.5, 0.5])
        let declared = try XCTUnwrap(detector.declaration)
        XCTAssertEqual(declared.name, "scripted")
        XCTAssertEqual(declared.version, "2.1")
        XCTAssertEqual(declared.preset, "strict")
        XCTAssertEqual(declared.threshold, 0.45)
        XCTAssertEqual(
            declared.value.line,
            #"{"name": "scripted", "version": "2.1", "preset": "strict", "threshold": 0.45, "classes": ["A", "B"], "extra": {"x": 1}}"#,
            "recorded whole, members in the detector's order")
        XCTAssertEqual(
            detector.identity, "scripted 2.1, preset strict, threshold 0.45 (\(command))")
    }

    func testADetectorWithoutADeclarationKeepsItsCommandAsIdentity() throws {
        let command = #"while read p; do echo "{\"path\": \"$p\", \"score\": 1}"; done"#
        let detector = try DetectorProcess(command: command, timeout: 10)
        XCTAssertEqual(try detector.scores(paths: paths), [1, 1, 1])
        XCTAssertNil(detector.declaration)
        XCTAssertEqual(detector.identity, command)
    }

    func testAnErrorLineBecomesDuosOneLineError() {
        // Printed at start-up, before duo asks anything (as detectors/nudenet does without
        // its venv), and printed in place of an answer.
        assertFails(
            #"echo '{"error": "no model here: run make detectors"}'; exit 1"#,
            containing: "failed: no model here: run make detectors")
        assertFails(
            #"read p; echo '{"error": "cannot read '"$p"'"}'; sleep 5"#,
            containing: "failed: cannot read /images/a.png")
    }

    func testAMalformedDeclarationIsAnError() {
        assertFails(
            #"echo '{"detector": {"version": "1"}}'; sleep 5"#,
            containing: "declared itself in a malformed line: it has no \"name\"")
        assertFails(
            #"echo '{"detector": {"name": "x", "threshold": 3}}'; sleep 5"#,
            containing: "its \"threshold\" is not a number in [0, 1]")
    }

    func testTheCommandGetsTheEnvironmentItIsGiven() throws {
        let detector = try DetectorProcess(
            command: #"while read p; do echo "{\"path\": \"$p\", \"score\": $SCORE}"; done"#,
            timeout: 10, environment: ["SCORE": "0.75", "HOME": "/nowhere"])
        XCTAssertEqual(try detector.scores(paths: paths), [0.75, 0.75, 0.75])
        let home = try DetectorProcess(
            command:
                #"while read p; do case "$HOME" in /nowhere) s=1;; *) s=0;; esac; echo "{\"path\": \"$p\", \"score\": $s}"; done"#,
            timeout: 10, environment: ["HOME": "/nowhere"])
        XCTAssertEqual(
            try home.scores(paths: paths), [1, 1, 1], "given variables replace duo's own")
    }

    /// detectors/README.md's example violence detector, its classifier filled in with a
    /// constant, speaks the protocol.
    func testTheExampleDetectorOfTheDetectorsREADMEWorks() throws {
        let root = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let readme = try String(
            contentsOf: root.appendingPathComponent("detectors/README.md"), encoding: .utf8)
        let start = try XCTUnwrap(readme.range(of: "```python\n"), "the README's example")
        let end = try XCTUnwrap(
            readme.range(of: "\n```", range: start.upperBound..<readme.endIndex))
        let example = String(readme[start.upperBound..<end.lowerBound])
        let stub = try XCTUnwrap(example.range(of: "raise NotImplementedError"), example)
        let lineEnd = example[stub.lowerBound...].firstIndex(of: "\n") ?? example.endIndex
        let filled = example.replacingCharacters(in: stub.lowerBound..<lineEnd, with: "return 0.25")
        let script = NSTemporaryDirectory() + "duo-example-detector-\(UUID()).py"
        try filled.write(toFile: script, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: script) }
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/bin/sh")
        probe.arguments = ["-c", "command -v python3 >/dev/null"]
        try probe.run()
        probe.waitUntilExit()
        if probe.terminationStatus != 0 { throw XCTSkip("no python3 to run the example with") }
        let detector = try DetectorProcess(command: "python3 '\(script)'", timeout: 30)
        XCTAssertEqual(try detector.scores(paths: paths), [0.25, 0.25, 0.25])
        XCTAssertEqual(detector.declaration?.name, "my-violence")
    }
}
