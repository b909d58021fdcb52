import Concepts
import Formats
import Foundation
import World
import XCTest

/// `duo attack concept-inversion` end to end on the tiny world model and an adapter
/// trained on it, and `duo eval` on the set it writes (the token loaded from beside it).
final class AttackConceptInversionTests: XCTestCase {
    static let root = FileManager.default.temporaryDirectory.appendingPathComponent(
        "duo-inversion-\(getpid())"
    ).path

    func attack(_ out: String, _ extra: [String] = []) throws -> (status: Int32, stderr: String) {
        let result = try runDuo(
            [
                "attack", "concept-inversion", "--concept", "stripes", "--adapter",
                AttackUnlearnDiffTests.adapter,
                "--model", UnlearnCommandTests.prepared.model, "--pairs",
                UnlearnCommandTests.prepared.pairs,
                "--steps", "3", "--batch-size", "2", "--count", "3", "--quiet", "--out", out,
            ] + extra)
        return (result.status, result.stderr)
    }

    func prompts(_ path: String) throws -> [String] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
            .filter { !$0.hasPrefix("#") }
    }

    func testWritesPromptsWithTheTokenAndItsEmbeddingWhichEvalLoads() throws {
        let first = Self.root + "/a/stripes/concept-inversion.txt", second = Self.root + "/b.txt"
        let a = try attack(first), b = try attack(second)
        XCTAssertEqual(a.status, 0, a.stderr)
        XCTAssertEqual(b.status, 0, b.stderr)
        let written = try prompts(first)
        XCTAssertEqual(written, try prompts(second), "deterministic")
        XCTAssertEqual(written.count, 3)
        let concept = try ConceptFile(contentsOf: ShippedConcepts.path("stripes")!)
        for prompt in written {
            XCTAssertTrue(prompt.contains("<stripes>"), prompt)
            for word in concept.explicitWords + concept.synonyms {
                let used = prompt.lowercased().split(separator: " ").map {
                    $0.trimmingCharacters(in: .punctuationCharacters)
                }
                XCTAssertFalse(used.contains(word.lowercased()), "\(prompt) uses '\(word)'")
            }
        }
        let embeddings = Self.root + "/a/stripes/concept-inversion.safetensors"
        let file = try SafeTensorsReader(path: embeddings)
        XCTAssertEqual(file.names, ["<stripes>"])
        XCTAssertEqual(
            try file.floats("<stripes>"),
            try SafeTensorsReader(path: Self.root + "/b.safetensors").floats("<stripes>"))

        // A concept file naming the set: duo eval loads the token and reports the set.
        var text = try String(contentsOfFile: ShippedConcepts.path("stripes")!, encoding: .utf8)
        text =
            String(text[..<text.range(of: "[attacks]")!.lowerBound])
            + "[attacks]\nconcept-inversion = \"stripes/concept-inversion.txt\"\n"
        try text.write(toFile: Self.root + "/a/stripes.toml", atomically: true, encoding: .utf8)
        let eval = try runDuo([
            "eval", "--concept", Self.root + "/a/stripes.toml", "--model",
            UnlearnCommandTests.prepared.model,
            "--adapter", AttackUnlearnDiffTests.adapter, "--label", "DUO", "--seeds", "1",
            "--keep-prompts", "2",
            "--steps", "2", "--quiet", "--out", Self.root + "/report",
        ])
        XCTAssertEqual(eval.status, 0, eval.stderr)
        let json =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: Self.root + "/report/results.json")))
            as! [String: Any]
        for model in json["models"] as! [[String: Any]] {
            XCTAssertEqual(
                Array((model["defense_rate"] as! [String: Double]).keys), ["concept-inversion"])
        }
        // The eval reads the embedding beside the set: one of the wrong size is an error naming it.
        var writer = SafeTensorsWriter()
        try writer.add("<stripes>", shape: [3], values: [1, 2, 3])
        try writer.write(to: embeddings)
        let broken = try runDuo([
            "eval", "--concept", Self.root + "/a/stripes.toml", "--model",
            UnlearnCommandTests.prepared.model,
            "--seeds", "1", "--keep-prompts", "2", "--steps", "2", "--quiet", "--out",
            Self.root + "/report2",
        ])
        XCTAssertNotEqual(broken.status, 0)
        XCTAssertTrue(
            broken.stderr.contains("\(embeddings): key '<stripes>': embedding of 3 values"),
            broken.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: Self.root + "/report2"))
        try FileManager.default.removeItem(atPath: embeddings)
        let missing = try runDuo([
            "eval", "--concept", Self.root + "/a/stripes.toml", "--model",
            UnlearnCommandTests.prepared.model,
            "--seeds", "1", "--keep-prompts", "2", "--steps", "2", "--quiet", "--out",
            Self.root + "/report3",
        ])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("\(embeddings): missing"), missing.stderr)
    }

    func testBadInputsAreOneLineErrorsAndWriteNothing() throws {
        let out = Self.root + "/bad.txt"
        let token = try attack(out, ["--token", "striped"])
        XCTAssertNotEqual(token.status, 0)
        XCTAssertTrue(
            token.stderr.contains("the placeholder striped is already a token"), token.stderr)
        XCTAssertEqual(
            token.stderr.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n")
                .count, 1, token.stderr)
        let spaced = try attack(out, ["--token", "two words"])
        XCTAssertNotEqual(spaced.status, 0)
        XCTAssertTrue(spaced.stderr.contains("--token must be one word"), spaced.stderr)
        let safetensors = try attack(Self.root + "/bad.safetensors")
        XCTAssertNotEqual(safetensors.status, 0)
        XCTAssertTrue(
            safetensors.stderr.contains(
                "the prompt file; the token's .safetensors is written beside it"),
            safetensors.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        XCTAssertFalse(FileManager.default.fileExists(atPath: Self.root + "/bad.safetensors"))
    }
}
