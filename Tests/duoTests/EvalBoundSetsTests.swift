import Foundation
import XCTest

/// `duo eval --attack-set NAME=PATH@LABEL`: a set made against one model, sampled for it
/// alone; several of one name are one column of the report.
final class EvalBoundSetsTests: XCTestCase {
    var scratch = ""

    override func setUpWithError() throws {
        scratch =
            FileManager.default.temporaryDirectory.appendingPathComponent("bound-\(UUID())").path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        try "one small striped red circle in the middle on a dark background\n"
            .write(toFile: scratch + "/one.txt", atomically: true, encoding: .utf8)
        try """
        two big striped blue squares on the left on a light background
        one small green cross in the middle on a dark background

        """.write(toFile: scratch + "/two.txt", atomically: true, encoding: .utf8)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: scratch)
    }

    func small(_ out: String) -> [String] {
        [
            "eval", "--concept", "stripes", "--model", tinyWorldModel, "--prompts", "3",
            "--seeds", "1", "--keep-prompts", "2", "--steps", "2", "--quiet", "--out", out,
        ]
    }

    func assertRefused(_ sets: [String], _ expected: String, line: UInt = #line) throws {
        let out = scratch + "/refused"
        let result = try runDuo(small(out) + sets.flatMap { ["--attack-set", $0] })
        XCTAssertNotEqual(result.status, 0, line: line)
        let message = result.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertFalse(message.contains("\n"), message, line: line)
        XCTAssertTrue(message.contains(expected), message, line: line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "no report", line: line)
    }

    func testASetBoundToNoModelOrBoundAmbiguouslyIsAOneLineError() throws {
        let one = scratch + "/one.txt", two = scratch + "/two.txt"
        try assertRefused(
            ["uda=\(one)@DUO"],
            "--attack-set uda=\(one)@DUO: no model is labelled \"DUO\" (models: original; --label names them)"
        )
        try assertRefused(["uda=\(one)@"], "no model is labelled \"\"")
        try assertRefused(["uda=\(scratch)/none.txt@original"], "no such file \(scratch)/none.txt")
        try assertRefused(
            ["uda=\(one)@original", "uda=\(two)"],
            "--attack-set: attack set 'uda' given both for every model (NAME=PATH) and against one"
        )
        try assertRefused(
            ["uda=\(one)@original", "uda=\(two)@original"],
            "attack set 'uda': two sets made against 'original'")
        try assertRefused(["uda=\(one)", "uda=\(two)"], "attack set 'uda' given 2 times")
        // A path that exists is taken whole, '@' and all: the error is the second option's.
        let at = scratch + "/set@original.txt"
        try FileManager.default.copyItem(atPath: one, toPath: at)
        try assertRefused(["x=\(at)", "y=\(one)@nobody"], "y=\(one)@nobody: no model")
    }

    func testSetsOfOneNameMadeAgainstTwoModelsAreOneColumn() throws {
        let out = scratch + "/report"
        let result = try runDuo(
            small(out) + [
                "--adapter", AttackUnlearnDiffTests.adapter, "--label", "DUO",
                "--attack-set", "uda=\(scratch)/one.txt@original",
                "--attack-set", "uda=\(scratch)/two.txt@DUO",
            ])
        XCTAssertEqual(result.status, 0, result.stderr)
        func count(_ label: String) -> Int {
            (try? FileManager.default.contentsOfDirectory(atPath: out + "/images/\(label)/uda"))?
                .count ?? 0
        }
        XCTAssertEqual(count("original"), 1, "one.txt's prompt, for the original alone")
        XCTAssertEqual(count("DUO"), 2, "two.txt's prompts, for DUO alone")
        let json =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: out + "/results.json")))
            as! [String: Any]
        let sets = (json["sets"] as! [[String: Any]]).filter { $0["name"] as? String == "uda" }
        XCTAssertEqual(sets.map { $0["against"] as? String }, ["original", "DUO"])
        XCTAssertEqual(sets.map { $0["prompts"] as? Int }, [1, 2])
        let models = json["models"] as! [[String: Any]]
        for model in models {
            let perPrompt = model["concept_rate_per_prompt"] as! [String: [Double]]
            XCTAssertEqual(perPrompt["uda"]?.count, model["label"] as? String == "DUO" ? 2 : 1)
        }
        let report = try String(contentsOfFile: out + "/report.md", encoding: .utf8)
        XCTAssertEqual(report.components(separatedBy: "defense: uda").count, 2, "one column")
        XCTAssertTrue(report.contains("uda: each model under the set made against it"), report)
    }
}
