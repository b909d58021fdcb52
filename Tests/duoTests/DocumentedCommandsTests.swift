import Foundation
import XCTest

/// Every `duo` command the README and docs show in a code block is one the current CLI
/// accepts as written: its subcommand exists and its options parse and validate (run with
/// DUO_PARSE_ONLY=1, which stops before any work). `make docs-check` runs them for real.
final class DocumentedCommandsTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// The Markdown files a user reads.
    static func documents() throws -> [URL] {
        let docs = root.appendingPathComponent("docs")
        let nested =
            FileManager.default.enumerator(atPath: docs.path)?.compactMap { $0 as? String }
            .filter { $0.hasSuffix(".md") }.map { docs.appendingPathComponent($0) } ?? []
        return [
            root.appendingPathComponent("README.md"),
            root.appendingPathComponent("Sources/World/Resources/concepts/README.md"),
            root.appendingPathComponent("detectors/README.md"),
        ] + nested.sorted { $0.path < $1.path }
    }

    /// The `duo` command lines in a document's fenced code blocks, continuation lines
    /// joined and trailing `#` comments dropped, with their line numbers.
    static func commands(in text: String) -> [(line: Int, words: [String])] {
        var found: [(Int, [String])] = []
        var inBlock = false
        var pending: (line: Int, text: String)?
        for (index, raw) in text.components(separatedBy: "\n").enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("```") {
                inBlock.toggle()
                continue
            }
            guard inBlock else { continue }
            if var command = pending {
                command.text += " " + line
                pending = command
            } else if line.hasPrefix("duo ") || line.hasPrefix(".build/release/duo ") {
                pending = (index + 1, line)
            }
            guard let command = pending, !line.hasSuffix("\\") else { continue }
            let text = command.text.replacingOccurrences(of: "\\ ", with: " ")
            found.append((command.line, words(text)))
            pending = nil
        }
        return found
    }

    /// Shell words of `text` up to a `#` comment (double quotes group, as the docs write).
    static func words(_ text: String) -> [String] {
        var words: [String] = []
        var current = ""
        var quoted = false
        var started = false
        for character in text {
            if character == "\"" {
                quoted.toggle()
                started = true
            } else if character == "#" && !quoted && !started {
                break
            } else if character == " " && !quoted {
                if started { words.append(current) }
                (current, started) = ("", false)
            } else {
                current.append(character)
                started = true
            }
        }
        if started { words.append(current) }
        // $M and $A stand for the reader's model folder and adapter.
        return words.map {
            $0.replacingOccurrences(of: "$M", with: "/models/sd").replacingOccurrences(
                of: "$A", with: "/adapters/duo/adapter.safetensors")
        }
    }

    func testTheCommandReaderJoinsLinesAndDropsComments() {
        let text = "```\nduo eval --concept x \\\n  --label \"a b\"   # note\nls\n```\nduo sample\n"
        let found = Self.commands(in: text)
        XCTAssertEqual(found.count, 1, "\(found)")
        XCTAssertEqual(found.first?.words, ["duo", "eval", "--concept", "x", "--label", "a b"])
    }

    func testEveryDocumentedCommandParses() throws {
        var checked = 0
        for document in try Self.documents() {
            let text = try String(contentsOf: document, encoding: .utf8)
            for command in Self.commands(in: text) {
                let result = try runDuo(Array(command.words.dropFirst()), parseOnly: true)
                let place = "\(document.lastPathComponent):\(command.line)"
                XCTAssertEqual(
                    result.status, 0,
                    "\(place): \(command.words.joined(separator: " ")): \(result.stderr)")
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 10, "the README and docs show commands")
    }
}
