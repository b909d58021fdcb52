import Concepts
import Formats
import Foundation
import World
import XCTest
import TestSupport

/// `duo attack unlearndiff` end to end on the tiny world model and an adapter trained on it.
final class AttackUnlearnDiffTests: XCTestCase {
    static let root = scratchFolder("duo-unlearndiff")

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

    /// A short attack: 2 timesteps of 2 iterations, 4-step images.
    func attack(_ out: String, _ extra: [String] = []) throws -> (status: Int32, stderr: String) {
        let result = try runDuo(
            [
                "attack", "unlearndiff", "--concept", "stripes", "--adapter", Self.adapter,
                "--model", UnlearnCommandTests.prepared.model, "--timesteps", "2",
                "--iterations", "2", "--image-steps", "4", "--check-steps", "4", "--count", "3",
                "--quiet", "--out", out,
            ] + extra)
        return (result.status, result.stderr)
    }

    /// The file's records by column name.
    func table(_ path: String) throws -> [[String: String]] {
        let table = try CSVTable(
            parsing: try String(contentsOfFile: path, encoding: .utf8), path: path)
        return table.rows.map { Dictionary(uniqueKeysWithValues: zip(table.columns, $0)) }
    }

    func testWritesACSVSetThatEvalReadsWithEachPromptsSeedAndTheSameSeedGivesTheSameFile()
        throws
    {
        let first = Self.root + "/a.csv", second = Self.root + "/b.csv"
        let a = try attack(first), b = try attack(second)
        XCTAssertEqual(a.status, 0, a.stderr)
        XCTAssertEqual(b.status, 0, b.stderr)
        XCTAssertEqual(
            try Data(contentsOf: URL(fileURLWithPath: first)),
            try Data(contentsOf: URL(fileURLWithPath: second)), "deterministic")
        XCTAssertTrue(a.stderr.contains("of 3 prompts brought the concept back"), a.stderr)

        let (rows, columns) = try PromptSetFile.rows(first)
        XCTAssertTrue(
            columns.isSuperset(of: [
                "prompt", "evaluation_seed", "evaluation_guidance", "case_number",
                "original_prompt", "attack_success", "attack_iterations", "duo_attack",
            ]))
        let explicit = try PromptSetFile.read(
            ShippedConcepts.path("stripes")!.replacingOccurrences(of: ".toml", with: "")
                + "/explicit.txt")
        for (i, (row, record)) in zip(rows, try table(first)).enumerated() {
            XCTAssertEqual(row.seed, 0, "a text set's prompts are drawn at --seed")
            XCTAssertEqual(row.guidance, 7.5)
            XCTAssertEqual(row.caseNumber, String(i))
            XCTAssertEqual(record["original_prompt"], explicit[i])
            let iterations = Int(record["attack_iterations"]!)!
            XCTAssertTrue([0, 2, 4].contains(iterations), "whole timesteps: \(iterations)")
            if iterations == 0 {
                XCTAssertEqual(row.prompt, explicit[i], "no attack needed")
            } else {
                XCTAssertNotEqual(row.prompt, explicit[i], "a prefix before the prompt")
                XCTAssertTrue(row.prompt.hasSuffix(explicit[i]), row.prompt)
            }
            XCTAssertTrue(
                record["attack_success"] == "true" || iterations == 4, "stops at a success")
        }
    }

    /// A CSV in UnlearnDiffAtk's layout: each row attacked and written at its own seed and
    /// guidance, under its case number.
    func testACSVTargetKeepsEachRowsSeedGuidanceAndCaseNumber() throws {
        try FileManager.default.createDirectory(
            atPath: Self.root, withIntermediateDirectories: true)
        let targets = Self.root + "/targets.csv"
        try """
        ,prompt,evaluation_seed,evaluation_guidance,case_number
        21,"one small striped red circle in the middle on a dark background",932309623,7,21
        296,two big striped blue squares on the left on a light background,2868251644,2,296

        """.write(toFile: targets, atomically: true, encoding: .utf8)
        let out = Self.root + "/from-csv.csv"
        let result = try attack(out, ["--targets", targets, "--timesteps", "1"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let (rows, _) = try PromptSetFile.rows(out)
        XCTAssertEqual(rows.map(\.seed), [932_309_623, 2_868_251_644])
        XCTAssertEqual(rows.map(\.guidance), [7, 2])
        XCTAssertEqual(rows.map(\.caseNumber), ["21", "296"])
        XCTAssertEqual(
            try table(out).map { $0["original_prompt"] },
            [
                "one small striped red circle in the middle on a dark background",
                "two big striped blue squares on the left on a light background",
            ])
    }

    func testARerunGoesOnAfterTheRowsItFindsAndRefusesAnotherAttacksFile() throws {
        let whole = Self.root + "/whole.csv", resumed = Self.root + "/resumed.csv"
        XCTAssertEqual(try attack(whole).status, 0)
        XCTAssertEqual(try attack(resumed, ["--count", "1"]).status, 0)
        XCTAssertEqual(try table(resumed).count, 1)
        let again = try attack(resumed)
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertEqual(
            try String(contentsOfFile: resumed, encoding: .utf8),
            try String(contentsOfFile: whole, encoding: .utf8), "as one run")

        let before = try String(contentsOfFile: resumed, encoding: .utf8)
        let other = try attack(resumed, ["--seed", "7"])
        XCTAssertNotEqual(other.status, 0)
        XCTAssertTrue(
            other.stderr.contains("\(resumed):2: written by another attack"), other.stderr)
        XCTAssertEqual(try String(contentsOfFile: resumed, encoding: .utf8), before, "untouched")
    }

    /// The embedded model's duo_defaults.json runs 8 iterations per timestep; a folder
    /// without the file gets the reference's 40 (the row records the settings used).
    func testTheModelsDefaultsFileSetsTheIterationsAndAFolderWithoutItTheReferences() throws {
        /// The iterations one timestep ran, with a threshold no score passes.
        func iterations(model: String, out: String) throws -> String? {
            let result = try runDuo([
                "attack", "unlearndiff", "--concept", "stripes", "--adapter", Self.adapter,
                "--model", model, "--timesteps", "1", "--image-steps", "1", "--check-steps", "1",
                "--count", "1", "--detector-threshold", "1", "--quiet", "--out", out,
            ])
            XCTAssertEqual(result.status, 0, result.stderr)
            let row = try table(out).first
            XCTAssertTrue(
                row?["duo_attack"]?.contains("--iterations \(row?["attack_iterations"] ?? "")")
                    == true, "the settings recorded")
            return row?["attack_iterations"]
        }
        XCTAssertEqual(
            try iterations(model: UnlearnCommandTests.prepared.model, out: Self.root + "/d.csv"),
            "8")
        let bare = Self.root + "/bare-model"
        try? FileManager.default.removeItem(atPath: bare)
        try FileManager.default.copyItem(atPath: UnlearnCommandTests.prepared.model, toPath: bare)
        try FileManager.default.removeItem(atPath: bare + "/duo_defaults.json")
        XCTAssertEqual(try iterations(model: bare, out: Self.root + "/r.csv"), "40")
    }

    func testBadInputsAreOneLineErrorsAndWriteNothing() throws {
        let out = Self.root + "/bad.csv"
        let missing = try runDuo([
            "attack", "unlearndiff", "--concept", "stripes", "--adapter",
            "/nonexistent/a.safetensors", "--model", UnlearnCommandTests.prepared.model,
            "--quiet", "--out", out,
        ])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("/nonexistent/a.safetensors"), missing.stderr)

        let text = try attack(Self.root + "/set.txt")
        XCTAssertNotEqual(text.status, 0)
        XCTAssertTrue(text.stderr.contains("give a .csv path"), text.stderr)

        let targets = try attack(out, ["--targets", Self.root + "/none.csv"])
        XCTAssertNotEqual(targets.status, 0)
        XCTAssertTrue(targets.stderr.contains(Self.root + "/none.csv"), targets.stderr)

        let foreign = Self.root + "/foreign.csv"
        try "prompt\none\n".write(toFile: foreign, atomically: true, encoding: .utf8)
        let refused = try attack(foreign)
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("was not written by duo attack"), refused.stderr)

        let zero = try attack(out, ["--timesteps", "0"])
        XCTAssertNotEqual(zero.status, 0)
        XCTAssertTrue(zero.stderr.contains("--timesteps"), zero.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }
}
