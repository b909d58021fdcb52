import Formats
import Foundation
import XCTest
import TestSupport

/// `mpirun -n 2 duo ...`: the ranks split the work and write what one process writes.
final class MPITests: XCTestCase {
    static let root = scratchFolder("duo-mpi")

    /// Open MPI's launcher (`make deps` installs Debian's openmpi-bin).
    static func mpirun() throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") + ["/usr/bin"] {
            let candidate = "\(directory)/mpirun"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        // A failure, not a skip: `make test` installs it.
        throw MPIRunNotFound()
    }

    /// `duo ARGUMENTS` as `ranks` Open MPI ranks on this machine.
    func runRanks(_ ranks: Int, _ arguments: [String]) throws -> DuoResult {
        try runCommand(
            try Self.mpirun(),
            [
                "--allow-run-as-root", "--oversubscribe", "-n", String(ranks),
                try duoExecutable().path,
            ]
                + arguments)
    }

    func unlearn(_ out: String) -> [String] {
        [
            "unlearn", "--concept", "stripes", "--model", UnlearnCommandTests.prepared.model,
            "--pairs", UnlearnCommandTests.prepared.pairs, "--steps", "6", "--checkpoint-every",
            "3", "--rank", "4", "--batch-size", "4", "--quiet", "--out", out,
        ]
    }

    /// The first line of a run's train.jsonl.
    func firstStep(_ folder: String) throws -> [String: Double] {
        let text = try String(contentsOfFile: folder + "/train.jsonl", encoding: .utf8)
        let line = try XCTUnwrap(text.split(separator: "\n").first)
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
        return try XCTUnwrap(object as? [String: Double])
    }

    func testTwoRanksTrainTheAdapterOneProcessTrains() throws {
        let one = Self.root + "/one-\(UUID())"
        let two = Self.root + "/two-\(UUID())"
        let single = try runDuo(unlearn(one))
        XCTAssertEqual(single.status, 0, single.stderr)
        let split = try runRanks(2, unlearn(two))
        XCTAssertEqual(split.status, 0, split.stderr)
        // Rank 0 alone wrote: the same files, one adapter path printed.
        XCTAssertEqual(
            try FileManager.default.contentsOfDirectory(atPath: two).sorted(),
            try FileManager.default.contentsOfDirectory(atPath: one).sorted())
        XCTAssertEqual(split.stdout, two + "/adapter.safetensors\n")
        // The first step's values come from the summed gradients before any update: they
        // differ by float32 summation order alone.
        let first = try [one, two].map { try firstStep($0) }
        XCTAssertEqual(Set(first[0].keys), Set(first[1].keys))
        for (key, x) in first[0] where key != "seconds" {
            let y = first[1][key]!
            XCTAssertEqual(y, x, accuracy: 1e-5 * max(abs(x), 1e-3), key)
        }
        // Five updates later, Adam (which divides each gradient by its own size) has
        // amplified those roundings where gradients are near zero, most in a lora_B that
        // started at zero; the adapters still agree to within a percent of their size,
        // while a rank training on the wrong pairs (no gradient sum) leaves every lora_B,
        // which is all update, off by about its whole size.
        let a = try SafeTensorsReader(path: one + "/adapter.safetensors")
        let b = try SafeTensorsReader(path: two + "/adapter.safetensors")
        XCTAssertEqual(a.names, b.names)
        for name in a.names {
            let x = try a.floats(name)
            let y = try b.floats(name)
            let size = x.reduce(0) { $0 + Double($1 * $1) }.squareRoot()
            let difference = zip(x, y).reduce(0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) }
                .squareRoot()
            XCTAssertLessThan(difference, 1e-2 * size, name)
        }
    }

    /// `mpirun -n 2 duo synthesize`: the ranks make alternate batches; the folder holds the
    /// bytes one process writes (every batch runs the same shapes in both).
    func testTwoRanksSynthesizeTheFolderOneProcessDoes() throws {
        func synthesize(_ out: String) -> [String] {
            [
                "synthesize", "--concept", "stripes", "--model", UnlearnCommandTests.prepared.model,
                "--count", "7", "--batch-size", "2", "--steps", "4", "--no-filter", "--quiet",
                "--out", out,
            ]
        }
        let one = Self.root + "/pairs-one-\(UUID())"
        let two = Self.root + "/pairs-two-\(UUID())"
        let single = try runDuo(synthesize(one))
        XCTAssertEqual(single.status, 0, single.stderr)
        let split = try runRanks(2, synthesize(two))
        XCTAssertEqual(split.status, 0, split.stderr)
        XCTAssertEqual(split.stdout, two + "/manifest.jsonl\n")
        let files = try FileManager.default.subpathsOfDirectory(atPath: one).sorted()
        XCTAssertEqual(try FileManager.default.subpathsOfDirectory(atPath: two).sorted(), files)
        XCTAssertTrue(files.contains("safe/00006.png"), "\(files)")
        for file in files where !file.hasSuffix("safe") {
            XCTAssertEqual(
                FileManager.default.contents(atPath: one + "/" + file),
                FileManager.default.contents(atPath: two + "/" + file), file)
        }
    }

    /// `mpirun -n 2 duo eval`: the ranks draw alternate batches of each folder into rank 0's
    /// staging folder; rank 0 scores them and writes the report one process writes.
    func testTwoRanksEvaluateToTheReportOneProcessWrites() throws {
        func evaluate(_ out: String) -> [String] {
            // 30 keep prompts: two batches of the keep folder, one per rank.
            [
                "eval", "--concept", "stripes", "--model", UnlearnCommandTests.prepared.model,
                "--prompts", "3", "--seeds", "2", "--keep-prompts", "30", "--steps", "4",
                "--quiet", "--out", out,
            ]
        }
        let one = Self.root + "/eval-one-\(UUID())"
        let two = Self.root + "/eval-two-\(UUID())"
        let single = try runDuo(evaluate(one))
        XCTAssertEqual(single.status, 0, single.stderr)
        let split = try runRanks(2, evaluate(two))
        XCTAssertEqual(split.status, 0, split.stderr)
        XCTAssertEqual(split.stdout, two + "/report.html\n")
        let files = try FileManager.default.subpathsOfDirectory(atPath: one).sorted()
        XCTAssertEqual(try FileManager.default.subpathsOfDirectory(atPath: two).sorted(), files)
        XCTAssertTrue(files.contains("images/original/keep/00029.png"), "\(files.prefix(5))")
        for file in files where file.hasSuffix(".png") || file == "results.json" {
            XCTAssertEqual(
                FileManager.default.contents(atPath: one + "/" + file),
                FileManager.default.contents(atPath: two + "/" + file), file)
        }
        let parent = URL(fileURLWithPath: two).deletingLastPathComponent().path
        XCTAssertFalse(
            try FileManager.default.contentsOfDirectory(atPath: parent).contains {
                $0.hasPrefix(URL(fileURLWithPath: two).lastPathComponent + ".tmp-")
            }, "no staging folder left")
    }

    /// Commands that do not split their work refuse to run as several ranks, rather than
    /// write the same files from each; so does ESD's trainer.
    func testCommandsThatRunInOneProcessRefuseSeveralRanks() throws {
        let sample = try runRanks(2, ["inspect", UnlearnCommandTests.prepared.model])
        XCTAssertNotEqual(sample.status, 0)
        XCTAssertTrue(sample.stderr.contains("this command runs in one process"), sample.stderr)
        let out = Self.root + "/esd-\(UUID())"
        let esd = try runRanks(
            2,
            [
                "unlearn", "--concept", "stripes", "--model", UnlearnCommandTests.prepared.model,
                "--method", "esd", "--steps", "1", "--quiet", "--out", out,
            ])
        XCTAssertNotEqual(esd.status, 0)
        XCTAssertTrue(esd.stderr.contains("--method esd runs in one process"), esd.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }
}

struct MPIRunNotFound: Error, CustomStringConvertible {
    var description: String {
        "mpirun not found: install Open MPI (make deps installs openmpi-bin)"
    }
}
