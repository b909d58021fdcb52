import Foundation
import XCTest

/// `duo synthesize` end to end on an embedded-architecture model after one training step.
final class SynthesizeCommandTests: XCTestCase {
    static var model: String { tinyWorldModel }

    var scratch = ""

    override func setUpWithError() throws {
        scratch =
            FileManager.default.temporaryDirectory.appendingPathComponent("synth-\(UUID())").path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: scratch)
    }

    func arguments(out: String) -> [String] {
        [
            "synthesize", "--concept", "stripes", "--model", Self.model, "--count", "12",
            "--batch-size", "2", "--steps", "8", "--no-filter", "--quiet", "--out", out,
        ]
    }

    func files(_ folder: String) throws -> [String: Data] {
        var result: [String: Data] = [:]
        for file in try FileManager.default.subpathsOfDirectory(atPath: folder) {
            var isDirectory: ObjCBool = false
            _ = FileManager.default.fileExists(
                atPath: folder + "/" + file, isDirectory: &isDirectory)
            if !isDirectory.boolValue {
                result[file] = try Data(contentsOf: URL(fileURLWithPath: folder + "/" + file))
            }
        }
        return result
    }

    func testAKilledRunContinuesToTheSameFilesAsAnUninterruptedOne() throws {
        let straight = try runDuo(arguments(out: scratch + "/straight"))
        XCTAssertEqual(straight.status, 0, straight.stderr)

        let process = Process()
        process.executableURL = try duoExecutable()
        process.arguments = arguments(out: scratch + "/killed")
        process.standardError = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // Kill it once a few pairs are in the manifest, well before the end.
        let manifest = scratch + "/killed/manifest.jsonl"
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            let lines =
                (try? String(contentsOfFile: manifest, encoding: .utf8))?.split(separator: "\n")
                .count ?? 0
            if lines >= 4 { break }
            usleep(2000)
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        XCTAssertEqual(
            process.terminationReason, .uncaughtSignal, "the run ended before it was killed")
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch + "/killed/summary.json"))
        // The pairs of whole batches (of 2) of complete lines are kept; the rest is made again.
        let kept =
            (try String(contentsOfFile: manifest, encoding: .utf8)).filter { $0 == "\n" }.count / 2
            * 2
        let keptDates = try (0..<kept).map { try modificationDates(scratch + "/killed", pair: $0) }

        let resumed = try runDuo(arguments(out: scratch + "/killed"))
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        let expected = try files(scratch + "/straight")
        XCTAssertEqual(
            expected.count, 2 * 12 + 4, "pairs, manifest, settings, summary, contact sheet")
        let got = try files(scratch + "/killed")
        XCTAssertEqual(got.keys.sorted(), expected.keys.sorted())
        // Exact: both runs make pairs in the same batches of 2, through the same shapes.
        for (name, bytes) in expected where name != "summary.json" {
            XCTAssertEqual(got[name], bytes, name)
        }

        // Pair i's files are the same bytes whether made again or not: the summary's count of
        // pairs found in the folder, and the untouched files, show that the run continued.
        XCTAssertGreaterThan(kept, 0)
        let (straightSummary, resumedSummary) = (
            try summary(scratch + "/straight"), try summary(scratch + "/killed")
        )
        XCTAssertEqual(straightSummary["resumed"] as? Int, 0)
        XCTAssertEqual(resumedSummary["resumed"] as? Int, kept)
        XCTAssertEqual(
            NSDictionary(dictionary: resumedSummary.filter { $0.key != "resumed" }),
            NSDictionary(dictionary: straightSummary.filter { $0.key != "resumed" }))
        for pair in 0..<kept {
            XCTAssertEqual(
                try modificationDates(scratch + "/killed", pair: pair), keptDates[pair],
                "pair \(pair) was made again")
        }
    }

    func summary(_ folder: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: folder + "/summary.json"))
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// When pair `pair`'s two images were last written.
    func modificationDates(_ folder: String, pair: Int) throws -> [Date] {
        try ["unsafe", "safe"].map { side in
            let path = folder + "/" + side + String(format: "/%05d.png", pair)
            return try XCTUnwrap(
                try FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date)
        }
    }

    func assertRefused(_ arguments: [String], _ expected: String, out: String, line: UInt = #line) {
        let result = try! runDuo(arguments)
        XCTAssertNotEqual(result.status, 0, line: line)
        let message = result.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertFalse(message.contains("\n"), message, line: line)
        XCTAssertTrue(message.contains(expected), message, line: line)
        XCTAssertFalse(
            FileManager.default.fileExists(atPath: out), "\(out) was left behind", line: line)
    }

    /// Pairs drawn in bf16 mixed precision record it, and a float32 run does not take the
    /// folder as its own (its draws differ).
    func testBF16PairsRecordTheirPrecisionAndAreNotContinuedInFloat32() throws {
        let out = scratch + "/bf16"
        let small = arguments(out: out).map { $0 == "12" ? "2" : $0 }
        let made = try runDuo(small + ["--precision", "bf16"])
        if made.stderr.contains("AVX512-BF16") { throw XCTSkip("no AVX512-BF16: \(made.stderr)") }
        XCTAssertEqual(made.status, 0, made.stderr)
        let settings =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: out + "/synthesis.json")))
            as! [String: Any]
        XCTAssertEqual(settings["precision"] as? String, "bf16")
        let more = try runDuo(small)
        XCTAssertNotEqual(more.status, 0, "a float32 run took bf16 pairs as its own")
        XCTAssertTrue(more.stderr.contains("precision"), more.stderr)
    }

    func testBadInputsAreOneLineErrorsAndLeaveNothing() throws {
        let out = scratch + "/pairs"
        let base = ["synthesize", "--model", Self.model, "--out", out]
        assertRefused(base + ["--concept", "unicorns"], "unknown concept 'unicorns'", out: out)
        let malformed = scratch + "/bad.toml"
        try "name = \"bad\"\ndescription = oops\n".write(
            toFile: malformed, atomically: true, encoding: .utf8)
        assertRefused(base + ["--concept", malformed], "bad.toml:2: key 'description'", out: out)
        assertRefused(
            base + ["--concept", "stripes", "--strength", "0"],
            "--strength must be in (0, 1], got 0.0", out: out)
        assertRefused(
            base + ["--concept", "stripes", "--strength", "1.5"],
            "--strength must be in (0, 1], got 1.5", out: out)
        assertRefused(
            base + ["--concept", "stripes", "--count", "0"], "--count must be at least 1, got 0",
            out: out)
        assertRefused(
            [
                "synthesize", "--model", Self.model, "--concept", "stripes", "--out",
                "/dev/null/pairs",
            ],
            "/dev/null/pairs: cannot create the output folder", out: "/dev/null/pairs")
    }
}
