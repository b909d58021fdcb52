import Concepts
import Formats
import Foundation
import World
import XCTest
import TestSupport

/// `duo attack concept-inversion` end to end on the tiny world model and an adapter
/// trained on it, and `duo eval` on the set it writes (the token loaded from beside it).
final class AttackConceptInversionTests: XCTestCase {
    static let root = scratchFolder("duo-inversion")

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
        XCTAssertEqual(try file.info("<stripes>").shape.first, 1, "[1, hidden], as diffusers saves")
        XCTAssertEqual(file.metadata["format"], "pt")
        let header = try String(contentsOfFile: first, encoding: .utf8)
        XCTAssertTrue(
            header.contains(
                "--initializer vocabulary-mean --captions prompts --images 0 --steps 3 --lr 0.02 "
                    + "--no-scale-lr --batch-size 2 --grad-accum 1 --weight-decay 0.0 --flip-p 0.0"),
            "the embedded model's preset: \(header)")
        XCTAssertFalse(
            FileManager.default.fileExists(
                atPath: Self.root + "/a/stripes/concept-inversion.checkpoint.safetensors"),
            "the checkpoint goes once the embedding is written")
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

    /// Ctrl-C checkpoints the embedding and AdamW's state beside the output and exits 130;
    /// --resume then ends on the embedding an uninterrupted run writes, byte for byte.
    func testAnInterruptedRunResumesToTheSameEmbedding() throws {
        let extra = ["--steps", "24", "--checkpoint-every", "1"]
        let straight = Self.root + "/straight.txt", stopped = Self.root + "/stopped.txt"
        let result = try attack(straight, extra)
        XCTAssertEqual(result.status, 0, result.stderr)
        let process = Process()
        process.executableURL = try duoExecutable()
        process.arguments =
            [
                "attack", "concept-inversion", "--concept", "stripes", "--adapter",
                AttackUnlearnDiffTests.adapter, "--model", UnlearnCommandTests.prepared.model,
                "--pairs", UnlearnCommandTests.prepared.pairs, "--batch-size", "2", "--count", "3",
                "--quiet", "--out", stopped,
            ] + extra
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let checkpoint = Self.root + "/stopped.checkpoint.safetensors"
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, !FileManager.default.fileExists(atPath: checkpoint) {
            usleep(2000)
        }
        kill(process.processIdentifier, SIGINT)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 130, "stopped by Ctrl-C before its last step")
        XCTAssertTrue(FileManager.default.fileExists(atPath: checkpoint))
        XCTAssertFalse(FileManager.default.fileExists(atPath: stopped))
        let resumed = try attack(stopped, extra + ["--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertEqual(
            try Data(contentsOf: URL(fileURLWithPath: Self.root + "/stopped.safetensors")),
            try Data(contentsOf: URL(fileURLWithPath: Self.root + "/straight.safetensors")))
        // An embedding file is no checkpoint: the error names the file.
        try FileManager.default.copyItem(
            atPath: Self.root + "/straight.safetensors",
            toPath: Self.root + "/other.checkpoint.safetensors")
        let refused = try attack(Self.root + "/other.txt", ["--steps", "7", "--resume"])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("other.checkpoint.safetensors"), refused.stderr)
    }

    /// A model folder without duo_defaults.json (a copy of the tiny model without it) gets
    /// Pham et al.'s settings: the concept's first word to start from, object templates,
    /// 25 images, batch 4 x accumulation 4 at 5e-3 scaled, weight decay 1e-2, flips.
    func testAModelWithoutAPresetGetsTheReferenceSettings() throws {
        let model = Self.root + "/reference-model"
        try? FileManager.default.removeItem(atPath: model)
        try FileManager.default.createDirectory(
            atPath: Self.root, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: UnlearnCommandTests.prepared.model, toPath: model)
        try FileManager.default.removeItem(atPath: model + "/duo_defaults.json")
        let out = Self.root + "/reference.txt"
        let result = try runDuo([
            "attack", "concept-inversion", "--concept", "stripes", "--adapter",
            AttackUnlearnDiffTests.adapter, "--model", model, "--pairs",
            UnlearnCommandTests.prepared.pairs, "--steps", "1", "--count", "2", "--quiet",
            "--out", out,
        ])
        XCTAssertEqual(result.status, 0, result.stderr)
        let header = try String(contentsOfFile: out, encoding: .utf8)
        XCTAssertTrue(
            header.contains(
                "--initializer striped --captions object --images 25 --steps 1 --lr 0.005 "
                    + "--scale-lr --batch-size 4 --grad-accum 4 --weight-decay 0.01 --flip-p 0.5"),
            header)
        let resume = try runDuo([
            "attack", "concept-inversion", "--concept", "stripes", "--adapter",
            AttackUnlearnDiffTests.adapter, "--model", model, "--pairs",
            UnlearnCommandTests.prepared.pairs, "--steps", "1", "--quiet", "--resume",
            "--out", Self.root + "/nothing.txt",
        ])
        XCTAssertNotEqual(resume.status, 0)
        XCTAssertTrue(
            resume.stderr.contains(
                "nothing.checkpoint.safetensors: no checkpoint to resume from; run without --resume to start"
            ), resume.stderr)
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
        let initializer = try attack(out, ["--initializer", "blue square"])
        XCTAssertNotEqual(initializer.status, 0)
        XCTAssertTrue(
            initializer.stderr.contains("--initializer must be one word"), initializer.stderr)
        let several = try attack(out, ["--initializer", "blue-square"])
        XCTAssertNotEqual(several.status, 0)
        XCTAssertTrue(several.stderr.contains("tokens to the model's tokenizer"), several.stderr)
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
