import Foundation
import XCTest

/// Every relative link in the docs points at a file or folder of the repository.
final class DocumentLinksTests: XCTestCase {
    /// The targets of `[text](target)` links in `text`, anchors dropped; web links and
    /// same-page anchors left out.
    static func relativeLinks(in text: String) -> [String] {
        let pattern = try! NSRegularExpression(pattern: #"\]\(([^)\s]+)\)"#)
        let range = NSRange(text.startIndex..., in: text)
        return pattern.matches(in: text, range: range).compactMap { match in
            let target = String(text[Range(match.range(at: 1), in: text)!])
            let path = String(target.split(separator: "#", omittingEmptySubsequences: false)[0])
            let web = ["http://", "https://", "mailto:"].contains { target.hasPrefix($0) }
            return web || path.isEmpty ? nil : path
        }
    }

    func testTheLinkReaderFindsRelativeLinksOnly() {
        XCTAssertEqual(
            Self.relativeLinks(
                in: "[a](docs/cli.md#x) [b](https://x.org) [c](#here) [d](../e.md) `[f](g)`"),
            ["docs/cli.md", "../e.md", "g"])
    }

    func testEveryRelativeLinkResolves() throws {
        let root = DocumentedCommandsTests.root
        let documents =
            try DocumentedCommandsTests.documents()
            + ["BENCHMARKS.md", "RELIABILITY.md"].map { root.appendingPathComponent($0) }
        var checked = 0
        for document in documents where FileManager.default.fileExists(atPath: document.path) {
            let text = try String(contentsOf: document, encoding: .utf8)
            for link in Self.relativeLinks(in: text) {
                let target = document.deletingLastPathComponent().appendingPathComponent(link)
                XCTAssertTrue(
                    FileManager.default.fileExists(atPath: target.standardized.path),
                    "\(document.path): link to \(link) points at nothing")
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 50, "the docs hold links")
    }
}
