import Formats
import Foundation
import XCTest

/// A user's files where a run writes, and counts or paths that would trap or hang (the
/// second robustness sweep): each is refused with one line before any work, the user's
/// file left as it was; what duo wrote itself it may replace. Each test failed before its
/// fix (the file overwritten or deleted, a trap, or a folder left that refused the rerun).
final class UserFileTests: XCTestCase {
    var scratch = ""

    override func setUpWithError() throws {
        scratch =
            FileManager.default.temporaryDirectory.appendingPathComponent("user-file-\(UUID())")
            .path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: scratch)
    }

    /// Writes "precious" at `path` (its folder made), and returns the path.
    @discardableResult
    func precious(_ path: String) throws -> String {
        try FileManager.default.createDirectory(
            atPath: PathText.parent(path), withIntermediateDirectories: true)
        try "precious".write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func assertKept(_ path: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(
            try? String(contentsOfFile: path, encoding: .utf8), "precious", path, file: file,
            line: line)
    }

    /// Exit 1...127, one `Error:` line holding `expected`.
    func assertRefused(
        _ result: DuoResult, _ expected: String, file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertTrue(
            (1...127).contains(result.status), "status \(result.status): \(result.stderr)",
            file: file, line: line)
        let errors = result.stderr.split(separator: "\n").filter { $0.hasPrefix("Error:") }
        XCTAssertEqual(errors.count, 1, result.stderr, file: file, line: line)
        XCTAssertTrue(
            result.stderr.contains(expected), "expected '\(expected)' in: \(result.stderr)",
            file: file, line: line)
    }

    func testSampleReplacesItsOwnImageButNoOtherFile() throws {
        let sample = [
            "sample", "--model", tinyWorldModel, "--prompt", "a red circle", "--steps", "1",
        ]
        let mine = try precious(scratch + "/mine.png")
        assertRefused(try runDuo(sample + ["--out", mine]), "exists and was not written by duo")
        assertKept(mine)
        let own = scratch + "/own.png"
        XCTAssertEqual(try runDuo(sample + ["--out", own]).status, 0)
        XCTAssertTrue(PNGMark.isMarked(path: own))
        let again = try runDuo(sample + ["--out", own])
        XCTAssertEqual(again.status, 0, again.stderr)
        try precious(scratch + "/many-2.png")
        assertRefused(
            try runDuo(sample + ["--count", "2", "--out", scratch + "/many.png"]), "many-2.png")
        assertKept(scratch + "/many-2.png")
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch + "/many-1.png"))
    }

    func testWorldCommandsKeepAUsersFiles() throws {
        let grid = try precious(scratch + "/grid.png")
        assertRefused(
            try runDuo([
                "world", "check", "--model", tinyWorldModel, "--steps", "1", "--samples", "2",
                "--grid", grid,
            ]), "exists and was not written by duo")
        assertKept(grid)
        let weights = try precious(scratch + "/detector.safetensors")
        assertRefused(
            try runDuo(["world", "detect", "--steps", "1", "--train-to", weights]),
            "exists and was not written by this command")
        assertKept(weights)

        let model = try precious(scratch + "/p1/model/mine.txt")
        assertRefused(
            try runDuo(["world", "pretrain", "--steps", "1", "--out", scratch + "/p1"]),
            "holds a model folder without the checkpoint")
        assertKept(model)
        let checkpoint = try precious(scratch + "/p2/checkpoint.safetensors")
        assertRefused(
            try runDuo(["world", "pretrain", "--steps", "1", "--out", scratch + "/p2"]),
            "is not a duo world pretrain checkpoint")
        assertKept(checkpoint)
        assertRefused(
            try runDuo(["world", "pretrain", "--steps", "1", "--resume", "--out", scratch + "/p3"]),
            "--resume: \(scratch)/p3/checkpoint.safetensors does not exist")
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch + "/p3"))
    }

    func testUnlearnKeepsAUsersFileThatHasARunFilesName() throws {
        let config = try precious(scratch + "/run/config.json")
        assertRefused(
            try runDuo([
                "unlearn", "--concept", "stripes", "--model", UnlearnCommandTests.prepared.model,
                "--pairs", UnlearnCommandTests.prepared.pairs, "--steps", "1", "--rank", "2",
                "--batch-size", "2", "--quiet", "--force", "--out", scratch + "/run",
            ]), "holds config.json, which duo unlearn did not write")
        assertKept(config)
    }

    /// The writer lock was `OUT/.lock`: a user's file of that name was truncated, then removed.
    func testAUsersLockFileInAnOutputFolderIsLeftAlone() throws {
        let lock = try precious(scratch + "/pairs/.lock")
        let result = try runDuo([
            "synthesize", "--concept", "stripes", "--model", tinyWorldModel, "--count", "1",
            "--steps", "2", "--no-filter", "--quiet", "--out", scratch + "/pairs",
        ])
        XCTAssertEqual(result.status, 0, result.stderr)
        assertKept(lock)
    }

    /// A pretraining killed while writing its model left `model.tmp-PID`, which refused
    /// the rerun; and a resume of a finished run exited 0 without writing the model.
    func testAKilledPretrainingsModelFolderDoesNotBlockItsResume() throws {
        let out = scratch + "/pretrain"
        let pretrain = ["world", "pretrain", "--steps", "1", "--batch-size", "1", "--out", out]
        XCTAssertEqual(try runDuo(pretrain).status, 0)
        try FileManager.default.removeItem(atPath: out + "/model")
        // A PID past Linux's largest (2^22): no process holds it.
        try FileManager.default.createDirectory(
            atPath: out + "/model.tmp-4194305/unet", withIntermediateDirectories: true)
        let resumed = try runDuo(pretrain + ["--resume"])
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/model/model_index.json"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/model.tmp-4194305"))
    }

    /// A --force run that failed left its own log beside the earlier run's adapter and
    /// checkpoint; a resume with another rank failed on a tensor's shape.
    func testARunThatStartsOverLeavesNoEarlierRunBesideIt() throws {
        let base = [
            "unlearn", "--concept", "stripes", "--model", UnlearnCommandTests.prepared.model,
            "--pairs", UnlearnCommandTests.prepared.pairs, "--steps", "1", "--rank", "2",
            "--batch-size", "2", "--quiet", "--out", scratch + "/run",
        ]
        XCTAssertEqual(try runDuo(base).status, 0)
        assertRefused(
            try runDuo(base + ["--resume", "--rank", "4", "--alpha", "2"]),
            "was made with rank 2, not 4; resume with the same settings")
        assertRefused(
            try runDuo(base + ["--force", "--alpha", "1e38"]),
            "or the LoRA scale alpha/rank, now 5e+37")
        for name in ["adapter.safetensors", "checkpoint.safetensors", "config.json"] {
            XCTAssertFalse(
                FileManager.default.fileExists(atPath: scratch + "/run/" + name), name)
        }
    }

    /// A detector that cannot read the model's images stopped synthesis before its first
    /// pair, and the folder it left refused the next command.
    func testSynthesisThatFailsBeforeItsFirstPairLeavesNoFolder() throws {
        let result = try runDuo([
            "synthesize", "--concept", "stripes", "--model", UnlearnCommandTests.pipeline,
            "--count", "1", "--steps", "2", "--no-filter", "--quiet", "--out", scratch + "/pairs",
        ])
        assertRefused(result, "detector")
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch + "/pairs"))
        assertRefused(
            try runDuo([
                "sample", "--model", tinyWorldModel, "--prompt", "a", "--steps", "1", "--lora",
                UnlearnCommandTests.prepared.pairs + "/unsafe/00000.png", "--out",
                scratch + "/x.png",
            ]), "00000.png: not a safetensors file")
    }

    func testPairsOfAnotherConceptAreRefused() throws {
        assertRefused(
            try runDuo([
                "unlearn", "--concept", "splatter", "--model", UnlearnCommandTests.prepared.model,
                "--pairs", UnlearnCommandTests.prepared.pairs, "--steps", "1", "--quiet", "--out",
                scratch + "/run",
            ]), "pairs of the concept \"stripes\" (its synthesis.json), not \"splatter\"")
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch + "/run"))
    }

    func testConceptInversionKeepsTheFilesBesideItsSet() throws {
        let attack = [
            "attack", "concept-inversion", "--concept", "stripes", "--adapter",
            AttackUnlearnDiffTests.adapter, "--model", UnlearnCommandTests.prepared.model,
            "--pairs", UnlearnCommandTests.prepared.pairs, "--steps", "1", "--batch-size", "2",
            "--count", "1", "--quiet",
        ]
        let checkpoint = try precious(scratch + "/a.checkpoint.safetensors")
        assertRefused(
            try runDuo(attack + ["--out", scratch + "/a.txt"]),
            "a.checkpoint.safetensors: exists and was not written by duo attack concept-inversion")
        assertKept(checkpoint)
        let embedding = try precious(scratch + "/b.safetensors")
        assertRefused(
            try runDuo(attack + ["--out", scratch + "/b.txt"]),
            "b.safetensors: exists and was not written by duo attack concept-inversion")
        assertKept(embedding)
    }

    func testMergeNeverWritesIntoTheModelItReads() throws {
        let model = scratch + "/model"
        try FileManager.default.copyItem(atPath: UnlearnCommandTests.pipeline, toPath: model)
        let merge = ["merge", "--model", model, "--lora", UnlearnCommandTests.adapter]
        assertRefused(
            try runDuo(merge + ["--out", model + "/merged"]), "inside the model folder")
        XCTAssertFalse(FileManager.default.fileExists(atPath: model + "/merged"))
        let slash = try runDuo(merge + ["--out", scratch + "/merged/"])
        XCTAssertEqual(slash.status, 0, slash.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: scratch + "/merged/model_index.json"))
    }

    func testAnEvalOutputWithATrailingSlashIsTheFolder() throws {
        let result = try runDuo([
            "eval", "--concept", "stripes", "--model", tinyWorldModel, "--prompts", "1",
            "--seeds", "1", "--keep-prompts", "2", "--steps", "1", "--quiet", "--out",
            scratch + "/report/",
        ])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: scratch + "/report/results.json"))
    }

    func testSynthesisSettingsWithNoEditStepLeaveNoFolder() throws {
        let synthesize = [
            "synthesize", "--concept", "stripes", "--model", tinyWorldModel, "--count", "1",
            "--no-filter", "--quiet", "--out", scratch + "/pairs",
        ]
        assertRefused(try runDuo(synthesize + ["--steps", "1"]), "leaves no step to run")
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch + "/pairs"))
        let corrected = try runDuo(synthesize + ["--steps", "2"])
        XCTAssertEqual(corrected.status, 0, corrected.stderr)
    }

    func testCountsPastAnyRunAreRefusedBeforeAllocating() throws {
        let eval = [
            "eval", "--concept", "stripes", "--model", tinyWorldModel, "--prompts", "1",
            "--steps", "1", "--out", scratch + "/r",
        ]
        assertRefused(
            try runDuo(eval + ["--seeds", "1000000000", "--keep-prompts", "2"]),
            "--seeds must be from 1 to 1000, got 1000000000")
        assertRefused(
            try runDuo(eval + ["--seeds", "9223372036854775807", "--keep-prompts", "2"]),
            "--seeds must be from 1 to 1000")
        assertRefused(
            try runDuo(eval + ["--seeds", "1", "--keep-prompts", "1000000000"]),
            "--keep-prompts must be from 2 to 100000")
        assertRefused(
            try runDuo(["world", "check", "--steps", "1", "--samples", "100000000000"]),
            "--samples must be from 2 to 10000")
        assertRefused(
            try runDuo(["world", "prompts", "--concept", "stripes", "--count", "1000000000000"]),
            "--count must be from 1 to 1000000")
        assertRefused(
            try runDuo([
                "attack", "ring-a-bell", "--concept", "stripes", "--population", "1000000000",
                "--out", scratch + "/q.txt",
            ]), "--population must be from 4 to 100000")
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch + "/r"))
    }

    static let detectorWeights = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Sources/World/Resources/detector.safetensors").path

    func testDetectorWeightsWithNaNAreRefusedByKey() throws {
        let source = try SafeTensorsReader(path: Self.detectorWeights)
        var writer = SafeTensorsWriter()
        for (i, name) in source.names.enumerated() {
            var values = try source.floats(name)
            if i == 0 { values[0] = .nan }
            try writer.add(name, shape: try source.info(name).shape, values: values)
        }
        let broken = scratch + "/detector.safetensors"
        try writer.write(to: broken)
        let image = scratch + "/x.png"
        try PNGImage(width: 32, height: 32, channels: 3, pixels: Array(repeating: 128, count: 3072))
            .write(to: image)
        assertRefused(
            try runDuo(["world", "detect", "--weights", broken, image]),
            "'\(source.names[0])': holds NaN or infinite values")
    }
}
