import Concepts
import Foundation
import XCTest

final class ConceptFileTests: XCTestCase {
    static let valid = """
        # a comment
        name = "dots"   # trailing comment
        description = "say \\"hi\\""
        kind = "object"

        [words]
        explicit = ["dotted", "dots",]
        synonyms = [
            "spotted",  # a comment inside
            "speckled"
        ]
        implicit = ["leopard"]

        [prompts]
        unsafe = ["{count} dotted {shape}"]
        safe = ["{count} {shape}"]
        """

    func testTheSubsetParses() throws {
        let file = try ConceptFile(parsing: Self.valid, path: "dots.toml")
        XCTAssertEqual(file.description, "say \"hi\"")
        XCTAssertEqual(file.explicitWords, ["dotted", "dots"])
        XCTAssertEqual(file.synonyms, ["spotted", "speckled"])
        XCTAssertEqual(file.keepPrompts, [])
        let crlf = Self.valid.replacingOccurrences(of: "\n", with: "\r\n")
        XCTAssertEqual(try ConceptFile(parsing: crlf, path: "dots.toml").synonyms, file.synonyms)
    }

    func assertError(
        _ text: String, _ expected: String, file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertThrowsError(
            try ConceptFile(parsing: text, path: "bad.toml"), file: file, line: line
        ) {
            let message = "\($0)"
            XCTAssertEqual(message, expected, file: file, line: line)
            XCTAssertFalse(message.contains("\n"), file: file, line: line)
        }
    }

    func testErrorsNameFileLineAndKey() {
        let valid = Self.valid
        assertError(
            valid.replacingOccurrences(of: "\"speckled\"", with: "speckled"),
            "bad.toml:10: key 'words.synonyms': expected a string in the array")
        assertError(
            valid.replacingOccurrences(of: "kind = \"object\"", with: "kind = 3"),
            "bad.toml:4: key 'kind': expected a string, found an integer")
        assertError(
            valid.replacingOccurrences(
                of: "implicit = [\"leopard\"]", with: "implicit = \"leopard\""),
            "bad.toml:12: key 'words.implicit': expected an array of strings, found a string")
        assertError(
            valid.replacingOccurrences(of: "implicit = [\"leopard\"]\n", with: ""),
            "bad.toml:6: key 'words.implicit': missing")
        assertError(
            valid.replacingOccurrences(of: "safe = [\"{count} {shape}\"]", with: "safe = []"),
            "bad.toml:16: key 'prompts.safe': must not be empty")
        assertError(
            valid.replacingOccurrences(of: "{count} dotted", with: "{count dotted"),
            "bad.toml:15: key 'prompts.unsafe': unclosed '{' in \"{count dotted {shape}\"")
        assertError(
            valid.replacingOccurrences(of: "{count} dotted", with: "{a b} dotted"),
            "bad.toml:15: key 'prompts.unsafe': '{a b}' is not a placeholder (letters, digits, "
                + "'_') in \"{a b} dotted {shape}\"")
        assertError(valid + "\ncolour = \"red\"", "bad.toml:17: key 'prompts.colour': unknown key")
        assertError(
            valid.replacingOccurrences(of: "say \\\"hi\\\"\"", with: "say hi"),
            "bad.toml:3: key 'description': unterminated string")
        assertError("[words\n", "bad.toml:1: expected ']' after table name 'words'")
        assertError("name = \"a\"\nname = \"b\"\n", "bad.toml:2: key 'name': defined twice")
    }

    static let settings = """

        [synthesis]
        strength = 0.8
        guidance = 5
        steps = 1_000
        pairs = 32

        [detector]
        command = "python3 detect.py --gpu"
        threshold = 0.25

        [attacks]
        paraphrases = "dots/paraphrases.txt"
        explicit = "sets/explicit.txt"
        """

    func testSynthesisDetectorAndAttackTables() throws {
        let file = try ConceptFile(parsing: Self.valid + Self.settings, path: "concepts/dots.toml")
        XCTAssertEqual(file.synthesis.strength, 0.8)
        XCTAssertEqual(file.synthesis.guidance, 5)
        XCTAssertEqual(file.synthesis.steps, 1000)
        XCTAssertEqual(file.synthesis.pairs, 32)
        XCTAssertNil(file.synthesis.editScheduler, "the model folder's own sampler")
        let ddim = try ConceptFile(
            parsing: Self.valid
                + Self.settings.replacingOccurrences(
                    of: "pairs = 32", with: "pairs = 32\nedit_scheduler = \"ddim\""),
            path: "dots.toml")
        XCTAssertEqual(ddim.synthesis.editScheduler, "ddim")
        XCTAssertNil(file.synthesis.unsafeGuidance, "the unsafe draw at the edit's guidance")
        let split = try ConceptFile(
            parsing: Self.valid
                + Self.settings.replacingOccurrences(
                    of: "pairs = 32", with: "pairs = 32\nunsafe_guidance = 4"),
            path: "dots.toml")
        XCTAssertEqual(split.synthesis.unsafeGuidance, 4)
        XCTAssertThrowsError(
            try ConceptFile(
                parsing: Self.valid
                    + Self.settings.replacingOccurrences(
                        of: "pairs = 32", with: "pairs = 32\nunsafe_guidance = -1"),
                path: "dots.toml")
        ) { XCTAssertTrue("\($0)".contains("synthesis.unsafe_guidance"), "\($0)") }
        XCTAssertEqual(file.detector.kind, .command("python3 detect.py --gpu"))
        XCTAssertEqual(file.detector.threshold, 0.25)
        XCTAssertEqual(file.attackSets.map(\.name), ["paraphrases", "explicit"], "file order")
        XCTAssertEqual(
            file.attackSets.map(\.path),
            ["concepts/dots/paraphrases.txt", "concepts/sets/explicit.txt"])
        // Without the tables: DUO's data settings and no detector named (a world's file gets
        // the built-in one of its name; a real model's, the run's --detector).
        let plain = try ConceptFile(parsing: Self.valid, path: "dots.toml")
        XCTAssertEqual(plain.synthesis, ConceptFile.SynthesisSettings())
        XCTAssertEqual(plain.detector.kind, .unspecified)
        let thresholdOnly = try ConceptFile(
            parsing: Self.valid + "\n[detector]\nthreshold = 0.7\n", path: "dots.toml")
        XCTAssertEqual(thresholdOnly.detector.kind, .unspecified)
        XCTAssertEqual(thresholdOnly.detector.threshold, 0.7)
        // One safe prompt serves every unsafe one.
        let shared = try ConceptFile(
            parsing: Self.valid.replacingOccurrences(
                of: "unsafe = [\"{count} dotted {shape}\"]",
                with: "unsafe = [\"{count} dotted {shape}\", \"dotted {shape}\"]"),
            path: "dots.toml")
        XCTAssertEqual(shared.safePrompts, ["{count} {shape}", "{count} {shape}"])
    }

    func testSettingErrorsNameTheKeyAndWhatWasExpected() {
        let text = Self.valid + Self.settings
        assertError(
            text.replacingOccurrences(of: "strength = 0.8", with: "strength = 1.5"),
            "bad.toml:18: key 'synthesis.strength': expected 0.0 to 1.0, found 1.5")
        assertError(
            text.replacingOccurrences(of: "strength = 0.8", with: "strength = 0"),
            "bad.toml:18: key 'synthesis.strength': expected a strength in (0, 1], found 0")
        assertError(
            text.replacingOccurrences(of: "pairs = 32", with: "pairs = 2.5"),
            "bad.toml:21: key 'synthesis.pairs': expected an integer, found 2.5")
        assertError(
            text.replacingOccurrences(of: "steps = 1_000", with: "steps = \"many\""),
            "bad.toml:20: key 'synthesis.steps': expected an integer, found a string")
        assertError(
            text.replacingOccurrences(of: "guidance = 5", with: "guidance = yes"),
            "bad.toml:19: key 'synthesis.guidance': 'yes' is not a value (strings are written in double quotes)"
        )
        assertError(
            text.replacingOccurrences(
                of: "threshold = 0.25", with: "threshold = 0.25\nbuiltin = \"stripes\""),
            "bad.toml:24: key 'detector.command': give either builtin or command, not both")
        assertError(
            text.replacingOccurrences(
                of: "pairs = 32", with: "pairs = 32\nedit_scheduler = \"euler\""),
            "bad.toml:22: key 'synthesis.edit_scheduler': expected one of ddim, ddpm, pndm, found 'euler'"
        )
        assertError(
            text.replacingOccurrences(of: "steps = 1_000", with: "steps = 1.2.3"),
            "bad.toml:20: key 'synthesis.steps': '1.2.3' is not a number")
    }

    static let unlearningTable = """

        [unlearning]
        beta = 250
        lr = 2e-3
        steps = 1500
        t_max = 1000
        targets = ["self-attention", "cross-attention"]
        prompted_share = 0.5
        """

    func testTheUnlearningTableSetsOnlyTheKeysItGives() throws {
        let file = try ConceptFile(parsing: Self.valid + Self.unlearningTable, path: "dots.toml")
        XCTAssertEqual(file.unlearning.beta, 250)
        XCTAssertEqual(file.unlearning.learningRate, 2e-3)
        XCTAssertEqual(file.unlearning.steps, 1500)
        XCTAssertEqual(file.unlearning.tMax, 1000)
        XCTAssertEqual(file.unlearning.targets, [.selfAttention, .crossAttention])
        XCTAssertEqual(file.unlearning.promptedShare, 0.5)
        XCTAssertNil(file.unlearning.lambda, "absent: the model's default, scaled by beta")
        XCTAssertNil(file.unlearning.rank)
        let plain = try ConceptFile(parsing: Self.valid, path: "dots.toml")
        XCTAssertEqual(plain.unlearning, ConceptFile.UnlearningDefaults())
    }

    func testUnlearningErrorsNameTheKey() {
        let text = Self.valid + Self.unlearningTable
        let line =
            text.split(separator: "\n", omittingEmptySubsequences: false).firstIndex {
                $0.hasPrefix("targets")
            }! + 1
        assertError(
            text.replacingOccurrences(of: "\"cross-attention\"]", with: "\"mlp\"]"),
            "bad.toml:\(line): key 'unlearning.targets': unknown target 'mlp' (known: self-attention, cross-attention, feed-forward, convs, text-encoder)"
        )
        assertError(
            text.replacingOccurrences(of: "steps = 1500", with: "steps = 0"),
            "bad.toml:\(line - 2): key 'unlearning.steps': expected 1 to 1000000000, found 0")
        assertError(
            text.replacingOccurrences(of: "beta = 250", with: "beta = -1"),
            "bad.toml:\(line - 4): key 'unlearning.beta': expected 1e-06 to 1000000000.0, found -1.0"
        )
        assertError(
            text.replacingOccurrences(of: "prompted_share = 0.5", with: "prompted_share = 2"),
            "bad.toml:\(line + 1): key 'unlearning.prompted_share': expected 0.0 to 1.0, found 2.0")
    }

    func testAnIntegerPastIntsRangeIsAnErrorNotATrap() {
        // Before: printing the found value with Int(value) trapped.
        let text = Self.valid + Self.settings
        assertError(
            text.replacingOccurrences(of: "pairs = 32", with: "pairs = 99999999999999999999999"),
            "bad.toml:21: key 'synthesis.pairs': integer '99999999999999999999999' is out of range (at most 2^53 in magnitude)"
        )
        // Within a Double's exact integers but past the key's range: the value as written.
        assertError(
            text.replacingOccurrences(of: "pairs = 32", with: "pairs = 9007199254740992"),
            "bad.toml:21: key 'synthesis.pairs': expected 1 to 1000000000, found 9007199254740992")
    }

    static var nameLine: Int {
        valid.split(separator: "\n", omittingEmptySubsequences: false).firstIndex {
            $0.hasPrefix("name")
        }! + 1
    }

    func testNamesAndAttackSetsCannotLeaveTheirFolders() {
        // A concept name becomes pairs/NAME and adapters/NAME; a set path is read by eval
        // and written by attacks: neither may point outside.
        for name in ["../../etc/x", "a/b", ".hidden", "", "-rf", "tab\tname"] {
            assertError(
                Self.valid.replacingOccurrences(of: "name = \"dots\"", with: "name = \"\(name)\""),
                "bad.toml:\(Self.nameLine): key 'name': '\(name)' is not a safe folder name "
                    + "(letters, digits, '-', '_', '.'; at most 100 characters; not starting with '.' or '-')"
            )
        }
        let text = Self.valid + Self.settings
        let line =
            text.split(separator: "\n", omittingEmptySubsequences: false).firstIndex {
                $0.hasPrefix("paraphrases")
            }! + 1
        for path in ["/etc/os-release", "../x.txt", "dots/../../x.txt"] {
            assertError(
                text.replacingOccurrences(of: "\"dots/paraphrases.txt\"", with: "\"\(path)\""),
                "bad.toml:\(line): key 'attacks.paraphrases': '\(path)' leaves the concept file's folder "
                    + "(give a path relative to it, without '..')")
        }
    }

    /// A set path inside the folder that a symbolic link takes out of it (eval read
    /// /etc/passwd into its results through one).
    func testAnAttackSetCannotLeaveItsFolderThroughASymbolicLink() throws {
        let folder = FileManager.default.temporaryDirectory
            .appendingPathComponent("concept-link-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(
            atPath: folder + "/dots", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            atPath: folder + "/dots/paraphrases.txt", withDestinationPath: "/etc/hostname")
        let path = folder + "/dots.toml"
        try (Self.valid + Self.settings).write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try ConceptFile(contentsOf: path)) {
            XCTAssertTrue(
                "\($0)".contains(
                    "key 'attacks.paraphrases': 'dots/paraphrases.txt' leads out of the concept file's folder through a symbolic link"
                ), "\($0)")
        }
        // A set not made yet, in a folder that is a link out.
        try FileManager.default.removeItem(atPath: folder + "/dots")
        try FileManager.default.createSymbolicLink(
            atPath: folder + "/dots", withDestinationPath: "/tmp")
        XCTAssertThrowsError(try ConceptFile(contentsOf: path))
    }

    /// A blank trigger word matched every prompt where words are looked for.
    func testBlankWordsAndTemplatesAreErrors() {
        for (from, to, key) in [
            ("\"speckled\"", "\"  \"", "words.synonyms"),
            ("\"speckled\"", "\"\"", "words.synonyms"),
        ] {
            XCTAssertThrowsError(
                try ConceptFile(
                    parsing: Self.valid.replacingOccurrences(of: from, with: to), path: "bad.toml")
            ) {
                XCTAssertTrue(
                    "\($0)".contains("key '\(key)': expected words, found a blank one"), "\($0)")
            }
        }
    }

    func testAMissingFileIsOneLine() {
        XCTAssertThrowsError(try ConceptFile(contentsOf: "/nonexistent/x.toml")) {
            XCTAssertEqual("\($0)", "/nonexistent/x.toml: cannot read the file")
        }
    }
}
