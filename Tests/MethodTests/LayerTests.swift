import Foundation
import XCTest

/// The layers of the package: the method (tensors, formats, models, concepts, unlearning,
/// evaluation) never reaches the toy world; only the `duo` executable wires the two.
final class LayerTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let method = ["Tensor", "Formats", "Diffusion", "Concepts", "Unlearning", "Evaluation"]

    /// Package.swift's targets and their direct dependencies, as SwiftPM reads them.
    func targets() throws -> [String: [String]] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        let scratch = NSTemporaryDirectory() + "duo-layers-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        // A scratch path of its own: the running build's folder stays locked by `swift test`.
        process.arguments = [
            "swift", "package", "--package-path", Self.root.path, "--scratch-path", scratch,
            "dump-package",
        ]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        let package = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
        var graph: [String: [String]] = [:]
        for target in try XCTUnwrap(package["targets"] as? [[String: Any]]) {
            let dependencies = (target["dependencies"] as? [[String: Any]] ?? []).compactMap {
                ($0.values.first as? [Any])?.first as? String
            }
            graph[target["name"] as! String] = dependencies
        }
        return graph
    }

    func testNoMethodTargetDependsOnTheWorld() throws {
        let graph = try targets()
        XCTAssertEqual(
            graph["World"]?.contains("Unlearning"), true, "the world plugs into the method")
        for target in Self.method {
            var seen: Set<String> = []
            var stack = [target]
            while let next = stack.popLast() {
                guard seen.insert(next).inserted else { continue }
                stack += graph[next] ?? []
            }
            XCTAssertFalse(
                seen.contains("World"), "\(target) reaches World through \(seen.sorted())")
        }
    }

    /// An undeclared import can still build when the module happens to be built already:
    /// the sources are read too.
    func testNoMethodSourceImportsTheWorld() throws {
        for target in Self.method {
            let folder = Self.root.appendingPathComponent("Sources/\(target)")
            let files =
                FileManager.default.enumerator(atPath: folder.path)?
                .compactMap { $0 as? String }.filter { $0.hasSuffix(".swift") } ?? []
            XCTAssertFalse(files.isEmpty, target)
            for file in files {
                let text = try String(
                    contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
                XCTAssertFalse(
                    text.split(separator: "\n").contains { $0.hasPrefix("import World") },
                    "Sources/\(target)/\(file) imports World")
            }
        }
    }
}
