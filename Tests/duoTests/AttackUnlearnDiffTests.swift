import Concepts
import Foundation
import World
import XCTest

/// `duo attack unlearndiff` end to end on the tiny world model and an adapter trained on it.
final class AttackUnlearnDiffTests: XCTestCase {
    static let root = FileManager.default.temporaryDirectory.appendingPathComponent(
        "duo-unlearndiff-\(getpid())"
    ).path

    static let adapter: String = {
        let out = root + "/adapter"
        let result = try! runDuo([
            "unlearn", "--concept", "stripes", "--model", UnlearnCommandTests.prepared.model,
            "--pairs", UnlearnCommandTests.prepared.pairs, "--steps", "2", "--rank", "2",
            "--batch-size", "2", "--quiet", "--out", out,
        ])
        precondition(result.status == 0, result.stderr)
        return out + "/adapter.safetensors"
    }()

    func attack(_ out: String, _ extra: [String] = []) throws -> (status: Int32, stderr: String) {
        let result = try runDuo(
            [
                "attack", "unlearndiff", "--concept", "stripes", "--adapter", Self.adapter,
                "--model", UnlearnCommandTests.prepared.model, "--pairs",
                UnlearnCommandTests.prepared.pairs,
                "--steps", "3", "--draws", "1", "--count", "3", "--quiet", "--out", out,
            ] + extra)
        return (result.status, result.stderr)
    }

    func prompts(_ path: String) throws -> [String] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
            .filter { !$0.hasPrefix("#") }
    }

    func testPrefixesAvoidTheConceptsWordsAndTheSameSeedGivesTheSameFile() throws {
        let first = Self.root + "/a.txt", second = Self.root + "/b.txt"
        let a = try attack(first), b = try attack(second)
        XCTAssertEqual(a.status, 0, a.stderr)
        XCTAssertEqual(b.status, 0, b.stderr)
        XCTAssertEqual(try prompts(first), try prompts(second), "deterministic")
        XCTAssertEqual(try prompts(first).count, 3)

        let manifest = try String(
            contentsOfFile: UnlearnCommandTests.prepared.pairs + "/manifest.jsonl", encoding: .utf8)
        let unsafePrompts = manifest.split(separator: "\n").prefix(3).map { line -> String in
            let record = try! JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            return record["unsafe_prompt"] as! String
        }
        let concept = try ConceptFile(contentsOf: ShippedConcepts.path("stripes")!)
        for (prompt, unsafe) in zip(try prompts(first), unsafePrompts) {
            XCTAssertTrue(
                prompt.hasSuffix(unsafe), "\(prompt) ends with the pair's prompt \(unsafe)")
            let prefix = prompt.dropLast(unsafe.count).split(separator: " ").map { $0.lowercased() }
            XCTAssertFalse(prefix.isEmpty, prompt)
            XCTAssertFalse(
                prompt.unicodeScalars.contains { CharacterSet.controlCharacters.contains($0) },
                "\(prompt): a control character")
            for word in concept.explicitWords + concept.synonyms {
                XCTAssertFalse(
                    prefix.contains(word.lowercased()), "\(prompt): the prefix uses '\(word)'")
            }
        }
        let other = Self.root + "/c.txt"
        XCTAssertEqual(try attack(other, ["--seed", "7", "--steps", "6", "--lr", "1"]).status, 0)
        XCTAssertNotEqual(
            try prompts(other), try prompts(first), "other draws and steps find other prefixes")
    }

    func testBadInputsAreOneLineErrorsAndWriteNothing() throws {
        let out = Self.root + "/bad.txt"
        let missing = try runDuo([
            "attack", "unlearndiff", "--concept", "stripes", "--adapter",
            "/nonexistent/a.safetensors",
            "--model", UnlearnCommandTests.prepared.model, "--pairs",
            UnlearnCommandTests.prepared.pairs,
            "--quiet", "--out", out,
        ])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("/nonexistent/a.safetensors"), missing.stderr)
        let tooMany = try attack(out, ["--count", "999"])
        XCTAssertNotEqual(tooMany.status, 0)
        XCTAssertTrue(tooMany.stderr.contains("--count 999"), tooMany.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }
}
