import Concepts
import Formats
import Foundation
import XCTest
import TestSupport

/// `duo unlearn`, `duo sample --lora` and `duo merge` end to end on small models.
final class UnlearnCommandTests: XCTestCase {
    static let root = scratchFolder("duo-unlearn")

    /// The shared tiny world model, and 8 pairs made with it.
    static let prepared: (model: String, pairs: String) = {
        let model = tinyWorldModel
        let synth = try! runDuo([
            "synthesize", "--concept", "stripes", "--model", model, "--count", "8",
            "--steps", "4", "--no-filter", "--quiet", "--out", root + "/pairs",
        ])
        precondition(synth.status == 0, synth.stderr)
        return (model, root + "/pairs")
    }()

    static let pipeline = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent()
        .appendingPathComponent("DiffusionTests/Fixtures/models/pipeline").path
    static let adapter = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent()
        .appendingPathComponent("UnlearningTests/Fixtures/dpo/adapter.safetensors").path

    func arguments(_ out: String) -> [String] {
        [
            "unlearn", "--concept", "stripes", "--model", Self.prepared.model, "--pairs",
            Self.prepared.pairs,
            "--steps", "12", "--checkpoint-every", "3", "--rank", "4", "--batch-size", "2",
            "--quiet", "--out", out,
        ]
    }

    /// The log's lines.
    func log(_ folder: String) throws -> [String] {
        try String(contentsOfFile: folder + "/train.jsonl", encoding: .utf8).split(separator: "\n")
            .map(String.init)
    }

    /// The log without its wall-clock field.
    func logWithoutTimes(_ folder: String) throws -> [String] {
        try log(folder).map {
            $0.replacingOccurrences(
                of: #", "seconds": [0-9.]+"#, with: "", options: .regularExpression)
        }
    }

    func config(_ folder: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: folder + "/config.json"))
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func testAKilledRunResumesToTheSameAdapterBytes() throws {
        let straight = Self.root + "/straight-\(UUID())"
        let result = try runDuo(arguments(straight))
        XCTAssertEqual(result.status, 0, result.stderr)

        let killed = Self.root + "/killed-\(UUID())"
        let process = Process()
        process.executableURL = try duoExecutable()
        process.arguments = arguments(killed)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            let lines =
                (try? String(contentsOfFile: killed + "/train.jsonl", encoding: .utf8))?.split(
                    separator: "\n"
                ).count ?? 0
            if lines >= 5 { break }
            usleep(2000)
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        XCTAssertEqual(
            process.terminationReason, .uncaughtSignal, "the run ended before it was killed")
        XCTAssertFalse(FileManager.default.fileExists(atPath: killed + "/adapter.safetensors"))
        let logBefore = try log(killed)

        let resumed = try runDuo(arguments(killed) + ["--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        // Exact: every step runs the same shapes in both runs (its micro-batch, cut into the
        // same shards), on the same machine, so the sums round alike.
        let a = try Data(contentsOf: URL(fileURLWithPath: straight + "/adapter.safetensors"))
        let b = try Data(contentsOf: URL(fileURLWithPath: killed + "/adapter.safetensors"))
        XCTAssertEqual(a, b, "adapter bytes")
        XCTAssertEqual(try logWithoutTimes(killed), try logWithoutTimes(straight))
        XCTAssertEqual(try logWithoutTimes(straight).count, 12)

        // Training is deterministic, so the bytes above are the same after a restart from
        // step 0: only the run's own record shows that it continued from the checkpoint.
        XCTAssertTrue(try config(straight)["resumed_from"] is NSNull, "a fresh run")
        let k = try XCTUnwrap(
            try config(killed)["resumed_from"] as? Int, "the resumed run's config.json")
        XCTAssertTrue(
            k > 0 && k % 3 == 0 && k <= logBefore.count,
            "resumed from step \(k) of \(logBefore.count) logged")
        // The steps up to the checkpoint (the first is at step 3) kept their log lines,
        // wall-clock times included: they were not run again.
        let kept = max(k, 3)
        XCTAssertEqual(Array(try log(killed).prefix(kept)), Array(logBefore.prefix(kept)))

        // Resuming with other settings is refused, naming the setting.
        let other = try runDuo(arguments(killed) + ["--resume", "--beta", "100"])
        XCTAssertNotEqual(other.status, 0)
        XCTAssertTrue(other.stderr.contains("beta"), other.stderr)
    }

    /// `--method dspo` trains on the same pairs with DSPO's pair term, logs it under its own
    /// name and records DSPO's settings.
    func testDSPOTrainsAnAdapterAndRecordsItsSettings() throws {
        let out = Self.root + "/dspo-\(UUID())"
        let result = try runDuo(
            arguments(out).map { $0 == "12" ? "3" : $0 } + [
                "--method", "dspo", "--dspo-beta", "0.5",
            ])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/adapter.safetensors"))
        let settings = try config(out)
        XCTAssertEqual(settings["method"] as? String, "dspo")
        XCTAssertEqual(settings["dspo_beta"] as? Double, 0.5)
        XCTAssertNil(settings["beta"], "DUO's beta is not DSPO's")
        let lines = try log(out)
        XCTAssertEqual(lines.count, 3)
        XCTAssertTrue(lines.allSatisfy { $0.contains(#""dspo": "#) && !$0.contains(#""dpo": "#) })
    }

    /// `--prefix-share` conditions prompted pairs on prefixed prompts: the run trains another
    /// adapter than the same run without it, and records the share and the concept words.
    func testAPrefixShareChangesTrainingAndIsRecorded() throws {
        let plain = Self.root + "/plain-\(UUID())"
        let prefixed = Self.root + "/prefixed-\(UUID())"
        let short = arguments(plain).map { $0 == "12" ? "3" : $0 } + ["--prompted-share", "1"]
        XCTAssertEqual(try runDuo(short).status, 0)
        let result = try runDuo(
            short.map { $0 == plain ? prefixed : $0 } + ["--prefix-share", "1"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let settings = try config(prefixed)
        XCTAssertEqual(settings["prefix_share"] as? Double, 1)
        XCTAssertEqual(
            settings["concept_words"] as? [String],
            ["striped", "stripes", "banded", "barred", "streaked", "tiger", "zebra"],
            "every word of the concept file: none may come before a prompt")
        XCTAssertNil(try config(plain)["prefix_share"])
        XCTAssertNotEqual(
            try Data(contentsOf: URL(fileURLWithPath: plain + "/adapter.safetensors")),
            try Data(contentsOf: URL(fileURLWithPath: prefixed + "/adapter.safetensors")))
    }

    func testAPrefixFileReplacesTheRandomWordsAndIsRecorded() throws {
        let random = Self.root + "/random-\(UUID())"
        let attacked = Self.root + "/attacked-\(UUID())"
        let prefixes = Self.root + "/prefixes-\(UUID()).txt"
        _ = Self.prepared  // makes the root folder
        try "red on purple\nzebra zebra\n".write(
            toFile: prefixes, atomically: true, encoding: .utf8)
        let short =
            arguments(random).map { $0 == "12" ? "3" : $0 } + [
                "--prompted-share", "1", "--prefix-share", "1",
            ]
        let without = try runDuo(
            short.dropLast(2).map { $0 == random ? attacked : $0 } + ["--prefix-file", prefixes])
        XCTAssertNotEqual(without.status, 0, "a prefix file needs prefixed pairs")
        XCTAssertTrue(without.stderr.contains("--prefix-share"), without.stderr)
        XCTAssertEqual(try runDuo(short).status, 0)
        let result = try runDuo(
            short.map { $0 == random ? attacked : $0 } + ["--prefix-file", prefixes])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(
            try config(attacked)["prefixes"] as? [String], ["red on purple", "zebra zebra"])
        XCTAssertNil(try config(random)["prefixes"])
        XCTAssertNotEqual(
            try Data(contentsOf: URL(fileURLWithPath: random + "/adapter.safetensors")),
            try Data(contentsOf: URL(fileURLWithPath: attacked + "/adapter.safetensors")))
    }

    /// bf16 mixed precision trains (finite adapters), is recorded, and a resume in another
    /// precision is refused; ESD and UCE run in float32 and refuse it.
    func testBF16PrecisionIsRecordedAndHeldOnResume() throws {
        let out = Self.root + "/bf16-\(UUID())"
        let short = arguments(out).map { $0 == "12" ? "3" : $0 }
        let result = try runDuo(short + ["--precision", "bf16"])
        if result.stderr.contains("AVX512-BF16") {
            throw XCTSkip("this CPU has no AVX512-BF16: \(result.stderr)")
        }
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(try config(out)["precision"] as? String, "bf16")
        let adapter = try SafeTensorsReader(path: out + "/adapter.safetensors")
        for info in adapter.tensors {
            XCTAssertTrue(try adapter.floats(info.name).allSatisfy(\.isFinite), info.name)
        }
        let resumed = try runDuo(short + ["--resume"])
        XCTAssertNotEqual(resumed.status, 0, "a bf16 run continued in float32")
        XCTAssertTrue(resumed.stderr.contains("precision"), resumed.stderr)
        let esd = try runDuo([
            "unlearn", "--concept", "stripes", "--model", Self.prepared.model, "--method", "esd",
            "--precision", "bf16", "--out", Self.root + "/esd-\(UUID())",
        ])
        XCTAssertNotEqual(esd.status, 0)
        XCTAssertTrue(esd.stderr.contains("--precision"), esd.stderr)
    }

    func testGradientCheckpointingTrainsTheSameAdapter() throws {
        let plain = Self.root + "/plain-\(UUID())"
        let checkpointed = Self.root + "/checkpointed-\(UUID())"
        let short = arguments(plain).map { $0 == "12" ? "3" : $0 }
        XCTAssertEqual(try runDuo(short).status, 0)
        let result = try runDuo(
            short.map { $0 == plain ? checkpointed : $0 } + ["--gradient-checkpointing"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let a = try SafeTensorsReader(path: plain + "/adapter.safetensors")
        let b = try SafeTensorsReader(path: checkpointed + "/adapter.safetensors")
        XCTAssertEqual(a.tensors.map(\.name), b.tensors.map(\.name))
        for info in a.tensors {
            let (x, y) = (try a.floats(info.name), try b.floats(info.name))
            let difference = zip(x, y).reduce(0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
            let norm = x.reduce(0) { $0 + Double($1) * Double($1) }
            // Three AdamW steps from gradients equal to float32 summation order. AdamW divides
            // each gradient by its own running magnitude (m / sqrt(v)), so a component whose
            // gradient is a cancellation of larger terms moves by its rounding relative to
            // itself, far more than float32's unit (the batch's layout alone shows it); a
            // checkpointed pass that lost a term moves the adapters by a large part of their
            // norm.
            XCTAssertLessThanOrEqual(difference.squareRoot(), 1e-3 * norm.squareRoot(), info.name)
        }
    }

    func testResumeWithoutACheckpointIsAOneLineError() throws {
        let out = Self.root + "/nothing-\(UUID())"
        let result = try runDuo(arguments(out) + ["--resume"])
        XCTAssertNotEqual(
            result.status, 0, "a --resume that finds no checkpoint must not start afresh")
        let message = result.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertFalse(message.contains("\n"), message)
        XCTAssertTrue(message.contains(out) && message.contains("no checkpoint"), message)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/adapter.safetensors"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/train.jsonl"))
    }

    /// A pairs folder whose `duo synthesize` was killed halfway (4 of its 8 pairs).
    func testAnIncompletePairsFolderIsRefused() throws {
        let pairs = Self.root + "/partial-pairs-\(UUID())"
        try FileManager.default.copyItem(atPath: Self.prepared.pairs, toPath: pairs)
        let manifest = pairs + "/manifest.jsonl"
        let lines = try String(contentsOfFile: manifest, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 8)
        try lines.prefix(4).map { $0 + "\n" }.joined().write(
            toFile: manifest, atomically: true, encoding: .utf8)
        try FileManager.default.removeItem(atPath: pairs + "/summary.json")

        let out = Self.root + "/partial-\(UUID())"
        var arguments = arguments(out)
        arguments[arguments.firstIndex(of: "--pairs")! + 1] = pairs
        let result = try runDuo(arguments)
        XCTAssertNotEqual(result.status, 0, "trained on 4 of 8 pairs")
        let message = result.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertFalse(message.contains("\n"), message)
        for part in [pairs, "4 of the 8 pairs", "duo synthesize"] {
            XCTAssertTrue(message.contains(part), "\(part) in: \(message)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/adapter.safetensors"))
    }

    func testATimestepRangeBeyondTheModelsScheduleIsRefused() throws {
        let out = Self.root + "/tmax-\(UUID())"
        let beyond = try runDuo(arguments(out) + ["--t-max", "5000"])
        XCTAssertNotEqual(beyond.status, 0)
        XCTAssertTrue(
            beyond.stderr.contains("t_max 5000") && beyond.stderr.contains("scheduler"),
            beyond.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/adapter.safetensors"))
        let empty = try runDuo(arguments(out) + ["--t-max", "0"])
        XCTAssertNotEqual(empty.status, 0)
        XCTAssertTrue(empty.stderr.contains("--t-max"), empty.stderr)
    }

    func testTheConceptFilesUnlearningTableSetsDefaultsAndOptionsWin() throws {
        let folder = Self.root + "/table-\(UUID())"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let conceptFile = folder + "/stripes.toml"
        try """
        name = "stripes"
        description = "test"
        kind = "attribute"
        [words]
        explicit = ["striped"]
        synonyms = ["banded"]
        implicit = ["zebra"]
        [prompts]
        unsafe = ["{count} striped {shape}"]
        safe = ["{count} {shape}"]
        [unlearning]
        beta = 40
        steps = 2
        t_max = 100
        targets = ["cross-attention"]
        prompted_share = 1
        lambda_unconditional = 50
        """.write(toFile: conceptFile, atomically: true, encoding: .utf8)
        func config(_ extra: [String]) throws -> [String: Any] {
            let out = folder + "/run-\(UUID())"
            let result = try runDuo(
                [
                    "unlearn", "--concept", conceptFile, "--model", Self.prepared.model,
                    "--pairs", Self.prepared.pairs, "--rank", "2", "--batch-size", "1",
                    "--quiet", "--out", out,
                ] + extra)
            XCTAssertEqual(result.status, 0, result.stderr)
            let data = try Data(contentsOf: URL(fileURLWithPath: out + "/config.json"))
            return try JSONSerialization.jsonObject(with: data) as! [String: Any]
        }
        let fromFile = try config([])
        XCTAssertEqual(fromFile["beta"] as? Double, 40)
        XCTAssertEqual(fromFile["steps"] as? Int, 2)
        XCTAssertEqual(fromFile["t_max"] as? Int, 100)
        XCTAssertEqual(fromFile["targets"] as? [String], ["cross-attention"])
        XCTAssertEqual(fromFile["prompted_share"] as? Double, 1)
        XCTAssertEqual(fromFile["lambda_unconditional"] as? Double, 50)
        let overridden = try config(["--beta", "80", "--steps", "1", "--prompted-share", "0"])
        XCTAssertEqual(overridden["beta"] as? Double, 80)
        XCTAssertEqual(overridden["steps"] as? Int, 1)
        XCTAssertEqual(overridden["prompted_share"] as? Double, 0)
        XCTAssertEqual(overridden["t_max"] as? Int, 100, "the file's, where no option is given")
        XCTAssertNil(
            overridden["lambda_unconditional"], "the file's term is for prompted runs only")

        // Unconditional preservation on prompt-free pairs would hold what DPO moves: refused.
        let out = folder + "/refused"
        let refused = try runDuo([
            "unlearn", "--concept", conceptFile, "--model", Self.prepared.model,
            "--pairs", Self.prepared.pairs, "--prompted-share", "0.5", "--quiet", "--out", out,
        ])
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(
            refused.stderr.contains("--lambda-unconditional")
                && refused.stderr.contains("--prompted-share 1"),
            refused.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/adapter.safetensors"))
    }

    func pixels(_ path: String) throws -> [Int] {
        try PNGImage(contentsOf: path).pixels.map(Int.init)
    }

    func testSampleWithLoRAMatchesTheMergedModel() throws {
        let dir = Self.root + "/merge-\(UUID())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let common = ["--prompt", "a photo", "--steps", "6", "--seed", "3"]
        func sample(_ extra: [String], _ name: String) throws -> [Int] {
            let r = try runDuo(["sample"] + common + extra + ["--out", dir + "/" + name])
            XCTAssertEqual(r.status, 0, r.stderr)
            return try pixels(dir + "/" + name)
        }
        let base = try sample(["--model", Self.pipeline], "base.png")
        // A strong scale, for a change well above rounding on this random tiny model.
        let adapted = try sample(
            ["--model", Self.pipeline, "--lora", Self.adapter, "--lora-scale", "30"], "lora.png")
        let off = try sample(
            ["--model", Self.pipeline, "--lora", Self.adapter, "--lora-scale", "0"], "off.png")
        // Exact: the same shapes, and the adapters add exact zeros.
        XCTAssertEqual(off, base, "scale 0 is the base model")
        XCTAssertGreaterThan(
            zip(base, adapted).map { abs($0 - $1) }.max()!, 5,
            "the adapter changes the image beyond rounding")

        let merge = try runDuo([
            "merge", "--model", Self.pipeline, "--lora", Self.adapter, "--lora-scale", "30",
            "--out", dir + "/merged",
        ])
        XCTAssertEqual(merge.status, 0, merge.stderr)
        let merged = try sample(["--model", dir + "/merged"], "merged.png")
        XCTAssertLessThanOrEqual(
            zip(merged, adapted).map { abs($0 - $1) }.max()!, 2,
            "merged within 2/255 of the adapter")
        let again = try runDuo([
            "merge", "--model", Self.pipeline, "--lora", Self.adapter, "--out", dir + "/merged",
        ])
        XCTAssertNotEqual(again.status, 0, "an existing folder is not overwritten")
    }
}
