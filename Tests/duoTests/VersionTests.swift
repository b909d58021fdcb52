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

        // The commit is one of this checkout's history (HEAD, or an ancestor when commits came
        // after the build): a real commit id, not whatever the plugin happened to write.
        guard let match = line.range(of: #"[0-9a-f]{12}"#, options: .regularExpression) else {
            return  // "unknown": built outside a git checkout
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        let git = Process()
        git.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        git.arguments = [
            "git", "-C", root.path, "merge-base", "--is-ancestor", String(line[match]), "HEAD",
        ]
        git.standardError = FileHandle.nullDevice
        try git.run()
        git.waitUntilExit()
        XCTAssertEqual(git.terminationStatus, 0, "\(line): not a commit of HEAD's history")
    }
}
