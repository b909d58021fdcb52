import Formats
import Foundation
import XCTest

/// Bad input and hostile paths (the reliability issue's list): each gives a one-line error
/// and a non-zero exit, or does the right thing; none traps, deletes what duo did not
/// write, or writes outside the folder it was given. Each test failed before its fix.
final class BadInputTests: XCTestCase {
    var scratch = ""

    override func setUpWithError() throws {
        scratch =
            FileManager.default.temporaryDirectory.appendingPathComponent("bad-input-\(UUID())")
            .path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: scratch)
    }

    /// A refusal: exit 1..127 (not a trap's 132/134), and an `Error:` line naming `expected`.
    func assertRefused(
        _ result: DuoResult, _ expected: String, file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertTrue(
            (1...127).contains(result.status), "status \(result.status): \(result.stderr)",
            file: file, line: line)
        XCTAssertFalse(
            result.stderr.contains("Program crashed"), result.stderr, file: file, line: line)
        let errorLines = result.stderr.split(separator: "\n").filter { $0.hasPrefix("Error:") }
        XCTAssertEqual(errorLines.count, 1, result.stderr, file: file, line: line)
        XCTAssertTrue(
            result.stderr.contains(expected), "expected '\(expected)' in: \(result.stderr)",
            file: file, line: line)
        XCTAssertFalse(
            result.stderr.contains("NSCocoaErrorDomain"), result.stderr, file: file, line: line)
    }

    func evalArguments(_ out: String) -> [String] {
        [
            "eval", "--concept", "stripes", "--model", tinyWorldModel, "--prompts", "1", "--seeds",
            "1",
            "--keep-prompts", "2", "--steps", "1", "--quiet", "--out", out,
        ]
    }

    func testEvalNeverDeletesAFolderOrFileItDidNotWrite() throws {
        let victim = scratch + "/victim"
        try FileManager.default.createDirectory(atPath: victim, withIntermediateDirectories: true)
        try "precious".write(toFile: victim + "/keep.txt", atomically: true, encoding: .utf8)
        assertRefused(
            try runDuo(evalArguments(victim)),
            "holds files that are not a duo eval report (keep.txt)")
        XCTAssertEqual(
            try String(contentsOfFile: victim + "/keep.txt", encoding: .utf8), "precious")

        let png = scratch + "/some.png"
        try "not a folder".write(toFile: png, atomically: true, encoding: .utf8)
        assertRefused(try runDuo(evalArguments(png)), "is a file")
        XCTAssertEqual(try String(contentsOfFile: png, encoding: .utf8), "not a folder")
    }

    func testEvalReplacesItsOwnReportAndRemovesStagingFoldersOfDeadRuns() throws {
        let out = scratch + "/report"
        // A staging folder of a run that died (no process has PID 2^22 + 1 on Linux's default pid_max).
        let abandoned = out + ".tmp-4194305"
        try FileManager.default.createDirectory(
            atPath: abandoned + "/images", withIntermediateDirectories: true)
        XCTAssertEqual(try runDuo(evalArguments(out)).status, 0)
        XCTAssertFalse(
            FileManager.default.fileExists(atPath: abandoned),
            "a dead run's staging folder is removed")
        let second = try runDuo(evalArguments(out))
        XCTAssertEqual(second.status, 0, "an earlier report is replaced: \(second.stderr)")
        let left = try FileManager.default.contentsOfDirectory(atPath: scratch)
        XCTAssertEqual(left, ["report"], "no staging or old folder left beside the report")
    }

    /// A killed eval leaves its staging folder; the same command takes it over, draws only
    /// the missing images, and writes the report a run never stopped writes.
    func testAKilledEvalContinuesToTheSameReport() throws {
        let arguments = { (out: String) in
            [
                "eval", "--concept", "stripes", "--model", tinyWorldModel, "--prompts", "3",
                "--seeds", "2", "--keep-prompts", "4", "--steps", "6", "--quiet", "--out", out,
            ]
        }
        let straight = scratch + "/straight"
        XCTAssertEqual(try runDuo(arguments(straight)).status, 0)

        let killed = scratch + "/killed"
        let process = Process()
        process.executableURL = try duoExecutable()
        process.arguments = arguments(killed)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let staging = killed + ".tmp-\(process.processIdentifier)"
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, !FileManager.default.fileExists(atPath: staging + "/images") {
            usleep(1000)
        }
        // Past the first set's images, before the report.
        while Date() < deadline, pngCount(staging) < 2 { usleep(1000) }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        XCTAssertEqual(
            process.terminationReason, .uncaughtSignal, "the run ended before it was killed")
        XCTAssertFalse(FileManager.default.fileExists(atPath: killed + "/results.json"))
        let drawn = pngCount(staging)

        let resumed = try runDuo(arguments(killed).filter { $0 != "--quiet" })
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(
            resumed.stderr.contains("continuing the images of a stopped run"),
            "\(drawn) images: \(resumed.stderr)")
        XCTAssertEqual(
            try Data(contentsOf: URL(fileURLWithPath: killed + "/results.json")),
            try Data(contentsOf: URL(fileURLWithPath: straight + "/results.json")))
        XCTAssertFalse(FileManager.default.fileExists(atPath: staging), "taken over, not left")

        // Other inputs: the stopped run's images are not used, and its folder is removed.
        let other = scratch + "/other"
        try FileManager.default.createDirectory(
            atPath: other + ".tmp-4194305/images", withIntermediateDirectories: true)
        try #"{"inputs_sha256": "0"}"#.write(
            toFile: other + ".tmp-4194305/run.json", atomically: true, encoding: .utf8)
        let fresh = try runDuo(arguments(other).filter { $0 != "--quiet" })
        XCTAssertEqual(fresh.status, 0, fresh.stderr)
        XCTAssertFalse(fresh.stderr.contains("continuing"), fresh.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: other + ".tmp-4194305"))
    }

    func pngCount(_ folder: String) -> Int {
        let walk = FileManager.default.enumerator(atPath: folder)
        return (walk?.allObjects as? [String] ?? []).filter { $0.hasSuffix(".png") }.count
    }

    func testLabelsAreFolderNamesInsideTheReport() throws {
        let adapter = UnlearnCommandTests.adapter
        var arguments = evalArguments(scratch + "/r")
        arguments[arguments.firstIndex(of: "--model")! + 1] = UnlearnCommandTests.pipeline
        assertRefused(
            try runDuo(arguments + ["--adapter", adapter, "--label", "../../x"]),
            "a label names a folder of the report")
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch + "/r"))
    }

    func testAttackOutputPathsOfAnyShapeAreCheckedNotTrapped() throws {
        let base = [
            "attack", "ring-a-bell", "--concept", "stripes", "--model", tinyWorldModel,
            "--generations", "1", "--population", "4", "--count", "1", "--quiet",
        ]
        let folder = scratch + "/folder"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        assertRefused(try runDuo(base + ["--out", folder]), "is a folder")
        assertRefused(try runDuo(base + ["--out", scratch + "/x/"]), "is a folder")
        XCTAssertEqual(
            try runDuo(base + ["--out", scratch + "/new/x.txt"]).status, 0, "--out's folder is made"
        )
        XCTAssertTrue(FileManager.default.fileExists(atPath: scratch + "/new/x.txt"))
        let mine = scratch + "/mine.txt"
        try "my own notes".write(toFile: mine, atomically: true, encoding: .utf8)
        assertRefused(try runDuo(base + ["--out", mine]), "was not written by duo attack")
        XCTAssertEqual(try String(contentsOfFile: mine, encoding: .utf8), "my own notes")

        // One-character names (NSString.deletingLastPathComponent traps on them), run in a
        // scratch folder; the default for a shipped concept is attacks/NAME here, never the bundle.
        let process = Process()
        process.executableURL = try duoExecutable()
        process.arguments = base + ["--out", "x"]
        process.currentDirectoryURL = URL(fileURLWithPath: scratch)
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        XCTAssertTrue(FileManager.default.fileExists(atPath: scratch + "/x"))
        let defaulted = Process()
        defaulted.executableURL = try duoExecutable()
        defaulted.arguments = base
        defaulted.currentDirectoryURL = URL(fileURLWithPath: scratch)
        try defaulted.run()
        defaulted.waitUntilExit()
        XCTAssertEqual(defaulted.terminationStatus, 0)
        XCTAssertTrue(
            FileManager.default.fileExists(atPath: scratch + "/attacks/stripes/ring-a-bell.txt"))
    }

    func testNonFiniteInputsAreErrorsNotTraps() throws {
        let pipeline = UnlearnCommandTests.pipeline
        let out = scratch + "/x.png"
        let nanAdapter = scratch + "/nan.safetensors"
        let file = try SafeTensorsReader(path: UnlearnCommandTests.adapter)
        var writer = SafeTensorsWriter(metadata: file.metadata)
        for name in file.names {
            let values = try file.floats(name)
            try writer.add(
                name, shape: try file.info(name).shape,
                values: name.hasSuffix("lora_B.weight") ? values.map { _ in .nan } : values)
        }
        try writer.write(to: nanAdapter)
        let sample = [
            "sample", "--model", pipeline, "--prompt", "a cat", "--steps", "2", "--out", out,
        ]
        assertRefused(
            try runDuo(sample + ["--lora", nanAdapter]),
            "lora_B.weight': holds NaN or infinite values")
        assertRefused(
            try runDuo(sample + ["--lora", UnlearnCommandTests.adapter, "--lora-scale", "nan"]),
            "--lora-scale must be a finite number")
        assertRefused(try runDuo(sample + ["--lora-scale", "2"]), "--lora-scale needs --lora")
        let adapter = UnlearnCommandTests.adapter
        assertRefused(
            try runDuo(sample + ["--lora", adapter + "@much"]),
            "expected PATH or PATH@SCALE with a finite SCALE")
        assertRefused(
            try runDuo(
                sample + ["--lora", adapter, "--lora", adapter + "@0.5", "--lora-scale", "2"]),
            "give each of several adapters its scale as PATH@SCALE")
        assertRefused(
            try runDuo(sample + ["--lora", scratch + "/none.safetensors@2"]),
            "none.safetensors: no such file")

        var latents = SafeTensorsWriter()
        try latents.add(
            "latents", shape: [1, 4, 8, 8], values: [Float](repeating: .nan, count: 256))
        try latents.write(to: scratch + "/latents.safetensors")
        assertRefused(
            try runDuo(sample + ["--latents", scratch + "/latents.safetensors"]),
            "holds NaN or infinite values")
        assertRefused(
            try runDuo([
                "merge", "--model", pipeline, "--lora", UnlearnCommandTests.adapter,
                "--lora-scale", "inf", "--out", scratch + "/merged",
            ]), "--lora-scale must be a finite number")
        // Finite factors whose product overflows: the merge names the adapter file (it named
        // "unet" and an internal scale).
        let hugeAdapter = scratch + "/huge.safetensors"
        var huge = SafeTensorsWriter(metadata: file.metadata)
        for name in file.names {
            try huge.add(
                name, shape: try file.info(name).shape,
                values: try file.floats(name).map { _ in 1e20 })
        }
        try huge.write(to: hugeAdapter)
        assertRefused(
            try runDuo([
                "merge", "--model", pipeline, "--lora", hugeAdapter, "--out", scratch + "/merged",
            ]), "huge.safetensors: key '")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch + "/merged"))
    }

    func testADivergingPretrainingStopsWithoutWritingANonFiniteModel() throws {
        let out = scratch + "/pretrain"
        let result = try runDuo([
            "world", "pretrain", "--steps", "3", "--batch-size", "2", "--learning-rate", "1e30",
            "--checkpoint-every", "1", "--out", out,
        ])
        assertRefused(result, "training diverged")
        let weights = try SafeTensorsReader(
            path: out + "/model/unet/diffusion_pytorch_model.safetensors")
        for name in weights.names {
            XCTAssertTrue(
                try weights.floats(name).allSatisfy(\.isFinite), "\(name) of the model last written"
            )
        }
    }

    func testAnImageSizeTheMachineCannotHoldIsRefusedWithTheEstimate() throws {
        let result = try runDuo([
            "sample", "--model", tinyWorldModel, "--prompt", "a red circle", "--height", "1000000",
            "--width", "1000000", "--out", scratch + "/x.png",
        ])
        assertRefused(result, "needs at least")
        XCTAssertTrue(result.stderr.contains("GB of memory; this machine has"), result.stderr)
    }

    func testOptionValuesAreParsedThenChecked() throws {
        let sample = [
            "sample", "--model", tinyWorldModel, "--prompt", "a red circle", "--steps", "1",
            "--out", scratch + "/x.png",
        ]
        let negative = try runDuo(sample + ["--seed", "-1"])
        XCTAssertNotEqual(negative.status, 0)
        XCTAssertFalse(negative.stderr.contains("Missing value"), negative.stderr)
        XCTAssertTrue(negative.stderr.contains("'-1' is invalid for '--seed"), negative.stderr)
        assertRefused(
            try runDuo(sample + ["--guidance", "-1"]),
            "--guidance must be a finite number >= 0, got -1.0")
        assertRefused(
            try runDuo(sample + ["--guidance", "nan"]),
            "--guidance must be a finite number >= 0, got nan")
        for timeout in ["0", "-1", "inf"] {
            assertRefused(
                try runDuo(evalArguments(scratch + "/r") + ["--detector-timeout", timeout]),
                "--detector-timeout must be a finite number > 0, got")
        }
        assertRefused(
            try runDuo(["unlearn", "--concept", "stripes", "--lr", "inf"]),
            "--lr must be in (0, 10], got inf")
        // The output's folder is checked before any sampling.
        assertRefused(
            try runDuo(sample + ["--count", "16", "--out", scratch + "/missing/dir/x.png"]),
            "no folder")
        // An empty path named ": cannot write" before it was refused by its option.
        assertRefused(
            try runDuo(sample + ["--out", ""]), "--out is empty; give a file or folder path")
        assertRefused(try runDuo(sample + ["--model="]), "--model is empty")
    }

    func testAPromptTheModelCannotReadWholeIsUsedWithOneWarning() throws {
        let long = "a red circle " + String(repeating: "red ", count: 40)
        let result = try runDuo([
            "sample", "--model", tinyWorldModel, "--prompt", long, "--negative-prompt", long,
            "--steps", "1", "--out", scratch + "/x.png",
        ])
        XCTAssertEqual(result.status, 0, result.stderr)
        let warnings = result.stderr.components(separatedBy: "are not read").count - 1
        XCTAssertEqual(warnings, 1, "said once for the prompt used twice: \(result.stderr)")
        XCTAssertTrue(result.stderr.contains("is cut after 22 tokens"), result.stderr)
    }

    func testASecondWriterToAPairsFolderIsRefusedNamingTheHolder() throws {
        let pairs = scratch + "/pairs"
        try FileManager.default.createDirectory(atPath: pairs, withIntermediateDirectories: true)
        let held = try OutputFolder.lock(pairs, for: "the pairs folder")
        defer { held.release() }
        let result = try runDuo([
            "synthesize", "--concept", "stripes", "--model", tinyWorldModel, "--count", "2",
            "--steps", "2", "--no-filter", "--quiet", "--out", pairs,
        ])
        assertRefused(result, "another duo is writing it (PID \(getpid()))")
        XCTAssertEqual(
            try FileManager.default.contentsOfDirectory(atPath: pairs), [".duo-lock"],
            "nothing written"
        )
    }

    func testAHangingDetectorsProcessGroupEndsWithTheRun() throws {
        let seconds = "\(Int.random(in: 3000...3999))"  // a duration no other process sleeps
        let script = scratch + "/detector.sh"
        // The shell starts a child of its own; both must end.
        try "sleep \(seconds) &\nsleep \(seconds)\n".write(
            toFile: script, atomically: true, encoding: .utf8)
        let result = try runDuo(
            evalArguments(scratch + "/r") + [
                "--detector", "/bin/sh \(script)", "--detector-timeout", "1",
            ])
        assertRefused(result, "gave no answer")
        let sleepers = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [])
            .filter { pid in
                guard let cmdline = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline")
                else { return false }
                return String(decoding: cmdline, as: UTF8.self) == "sleep\u{0}\(seconds)\u{0}"
            }
        XCTAssertEqual(sleepers, [], "no sleep of the detector's is left")
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch + "/r"))
    }

    func testAnUnlearnFolderOfAnotherRunOrOfOtherFilesIsRefused() throws {
        let base = [
            "unlearn", "--concept", "stripes", "--model", UnlearnCommandTests.prepared.model,
            "--pairs", UnlearnCommandTests.prepared.pairs, "--steps", "1", "--rank", "2",
            "--batch-size", "2", "--quiet",
        ]
        let out = scratch + "/run"
        XCTAssertEqual(try runDuo(base + ["--out", out]).status, 0)
        let adapter = try Data(contentsOf: URL(fileURLWithPath: out + "/adapter.safetensors"))
        assertRefused(
            try runDuo(base + ["--out", out, "--lambda", "0"]), "holds a run with lambda")
        XCTAssertEqual(
            try Data(contentsOf: URL(fileURLWithPath: out + "/adapter.safetensors")), adapter,
            "the other run's adapter is kept")
        XCTAssertEqual(try runDuo(base + ["--out", out, "--lambda", "0", "--force"]).status, 0)

        let documents = scratch + "/documents"
        try FileManager.default.createDirectory(
            atPath: documents, withIntermediateDirectories: true)
        try "mine".write(toFile: documents + "/config.txt", atomically: true, encoding: .utf8)
        assertRefused(
            try runDuo(base + ["--out", documents]),
            "holds files duo unlearn does not write (config.txt)")
        XCTAssertEqual(
            try FileManager.default.contentsOfDirectory(atPath: documents).filter {
                !$0.hasPrefix(".")
            }, ["config.txt"])
    }
}
