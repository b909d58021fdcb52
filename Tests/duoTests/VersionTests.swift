import Foundation
import XCTest

final class VersionTests: XCTestCase {
    /// `duo --version` names the release and the commit of the tree it was built from, as
    /// git reports it (the BuildInfo plugin records it at build time).
    func testVersionNamesTheCommitItWasBuiltFrom() throws {
        let result = try runDuo(["--version"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let line = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let pattern = #"^duo [0-9]+\.[0-9]+\.[0-9]+ \(commit ([0-9a-f]{12}(\+changes)?|unknown)\)$"#
        XCTAssertNotNil(line.range(of: pattern, options: .regularExpression), line)

        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        let git = Process()
        git.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        git.arguments = ["git", "-C", root.path, "rev-parse", "--short=12", "HEAD"]
        let output = Pipe()
        git.standardOutput = output
        git.standardError = FileHandle.nullDevice
        try git.run()
        let head = String(
            decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self
        ).trimmingCharacters(in: .whitespacesAndNewlines)
        git.waitUntilExit()
        guard git.terminationStatus == 0 else { return }  // not a git checkout: "unknown"
        XCTAssertTrue(line.contains("(commit \(head)"), "\(line) is not HEAD \(head)")
    }
}
