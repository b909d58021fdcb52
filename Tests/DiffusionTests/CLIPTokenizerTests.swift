import Diffusion
import Foundation
import XCTest

/// Parity with transformers' CLIPTokenizer on the real CLIP vocabulary (49408 tokens, rebuilt
/// from open_clip's merges by tools/make_tokenizer_fixtures.py), and one-line errors for
/// broken tokenizer folders.
final class CLIPTokenizerTests: XCTestCase {
    static let folder = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
        .appendingPathComponent("tokenizer").path

    /// What tokens.json holds: transformers 5.23's ids for each string.
    struct Fixture: Decodable {
        struct Case: Decodable {
            let text: String
            /// `tokenizer(text)["input_ids"]`: bos, tokens, eos.
            let ids: [Int]
            /// `padding="max_length", max_length=77, truncation=True`.
            let padded: [Int]
        }
        struct Variant: Decodable {
            let padTokenID: Int
            let vocabularySize: Int
            let cases: [Case]
        }
        struct Decoding: Decodable {
            let ids: [Int]
            let text: String
            let skipSpecial: String
        }
        let maxLength: Int
        let bosTokenID: Int
        let eosTokenID: Int
        let padTokenID: Int
        let vocabularySize: Int
        let cases: [Case]
        let variants: [String: Variant]
        let decode: [Decoding]
    }

    static let loadedFixture: Result<Fixture, Error> = Result {
        let url = URL(fileURLWithPath: folder).appendingPathComponent("tokens.json")
        return try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }

    /// Loaded once: reading 49408 tokens and 48894 merges is the slow part of these tests.
    static let tokenizer: Result<CLIPTokenizer, Error> = Result {
        try CLIPTokenizer(directory: folder)
    }

    private func loadTokenizer() throws -> CLIPTokenizer { try Self.tokenizer.get() }

    private func show(_ text: String) -> String {
        let scalars = text.unicodeScalars.map {
            $0.isASCII ? String($0) : "U+" + String($0.value, radix: 16)
        }
        return String(reflecting: text) + " (scalars " + scalars.joined(separator: " ") + ")"
    }

    /// Checks both encodings of every case; returns how many strings differed.
    @discardableResult
    private func assertParity(
        _ tokenizer: CLIPTokenizer, _ cases: [Fixture.Case], file: StaticString = #filePath,
        line: UInt = #line
    ) -> Int {
        var failures = 0
        for item in cases {
            let plain = tokenizer.encode(item.text)
            let padded = tokenizer.encode(item.text, padTo: 77)
            if plain != item.ids || padded != item.padded { failures += 1 }
            XCTAssertEqual(
                plain, item.ids, "plain ids of \(show(item.text))", file: file, line: line)
            XCTAssertEqual(
                padded, item.padded, "padded ids of \(show(item.text))", file: file, line: line)
        }
        return failures
    }

    // MARK: Parity

    func testPhotoOfACatGivesStableDiffusionIDs() throws {
        // The ids every SD 1.x pipeline feeds its text encoder for this prompt.
        XCTAssertEqual(
            try loadTokenizer().encode("a photo of a cat"),
            [49406, 320, 1125, 539, 320, 2368, 49407])
    }

    func testPropertiesMatchTransformers() throws {
        let tokenizer = try loadTokenizer()
        let fixture = try Self.loadedFixture.get()
        XCTAssertEqual(tokenizer.maxLength, fixture.maxLength, "model_max_length")
        XCTAssertEqual(tokenizer.bosTokenID, fixture.bosTokenID, "bos <|startoftext|>")
        XCTAssertEqual(tokenizer.eosTokenID, fixture.eosTokenID, "eos <|endoftext|>")
        XCTAssertEqual(tokenizer.padTokenID, fixture.padTokenID, "pad <|endoftext|> in SD 1.x")
        XCTAssertEqual(tokenizer.vocabularySize, fixture.vocabularySize, "len(tokenizer)")
    }

    func testEveryFixtureStringGivesTransformersIDs() throws {
        let cases = try Self.loadedFixture.get().cases
        XCTAssertGreaterThanOrEqual(cases.count, 250, "tokens.json holds at least 250 strings")
        XCTAssertTrue(cases.contains { $0.ids.count > 77 }, "tokens.json has over-long prompts")
        let failures = assertParity(try loadTokenizer(), cases)
        XCTAssertEqual(
            failures, 0, "\(failures) of \(cases.count) strings differ from transformers")
    }

    func testTruncationKeepsEOSLastAndPads() throws {
        let tokenizer = try loadTokenizer()
        let long = String(repeating: "a photo of a cat ", count: 30)
        let ids = tokenizer.encode(long, padTo: 10)
        XCTAssertEqual(
            ids, [49406, 320, 1125, 539, 320, 2368, 320, 1125, 539, 49407], "bos, 8 tokens, eos")
        let short = tokenizer.encode("cat", padTo: 6)
        XCTAssertEqual(
            short, [49406, 2368, 49407, 49407, 49407, 49407], "eos, then pad (eos in SD 1.x)")
    }

    /// A copy of the fixture folder with one variant's config files in place of SD 1.x's.
    private func variantFolder(_ name: String) throws -> String {
        let manager = FileManager.default
        let folder = manager.temporaryDirectory.appendingPathComponent("duo-tokenizer-\(UUID())")
            .path
        try manager.createDirectory(atPath: folder, withIntermediateDirectories: true)
        addTeardownBlock { try? manager.removeItem(atPath: folder) }
        for file in ["vocab.json", "merges.txt"] {
            try manager.createSymbolicLink(
                atPath: folder + "/" + file, withDestinationPath: Self.folder + "/" + file)
        }
        let variant = Self.folder + "/variants/" + name
        for file in try manager.contentsOfDirectory(atPath: variant) {
            try manager.copyItem(atPath: variant + "/" + file, toPath: folder + "/" + file)
        }
        return folder
    }

    func testStableDiffusion2PadTokenMatchesTransformers() throws {
        // SD 2.x pads with "!" (id 0), which transformers then also matches inside prompts.
        let variant = try XCTUnwrap(try Self.loadedFixture.get().variants["sd2"])
        let tokenizer = try CLIPTokenizer(directory: try variantFolder("sd2"))
        XCTAssertEqual(tokenizer.padTokenID, variant.padTokenID, "pad \"!\"")
        XCTAssertEqual(tokenizer.vocabularySize, variant.vocabularySize)
        XCTAssertEqual(assertParity(tokenizer, variant.cases), 0, "SD 2 strings differing")
    }

    func testAddedTokensDecoderMatchesTransformers() throws {
        // A modern save: added_tokens_decoder with a textual-inversion token "<cat-toy>" = 49408.
        let variant = try XCTUnwrap(try Self.loadedFixture.get().variants["added"])
        let tokenizer = try CLIPTokenizer(directory: try variantFolder("added"))
        XCTAssertEqual(tokenizer.vocabularySize, variant.vocabularySize, "49408 + <cat-toy>")
        XCTAssertEqual(tokenizer.encode("a <cat-toy>"), [49406, 320, 49408, 49407])
        XCTAssertEqual(assertParity(tokenizer, variant.cases), 0, "added-token strings differing")
    }

    func testATokenAddedInCodeMatchesTransformersAddedToken() throws {
        // What duo's textual-inversion loading does: the plain CLIP tokenizer plus
        // "<cat-toy>" as id 49408 must encode as transformers does with that token added.
        let variant = try XCTUnwrap(try Self.loadedFixture.get().variants["added"])
        let tokenizer = try XCTUnwrap(try loadTokenizer().addingToken("<cat-toy>", id: 49408))
        XCTAssertEqual(tokenizer.vocabularySize, variant.vocabularySize)
        XCTAssertEqual(assertParity(tokenizer, variant.cases), 0, "added-token strings differing")
        XCTAssertEqual(tokenizer.decode([320, 49408]), "a <cat-toy>")
        XCTAssertNil(
            try loadTokenizer().addingToken("cat", id: 49408), "already a token of the vocabulary")
        let upper = try XCTUnwrap(try loadTokenizer().addingToken("<Cat-Toy>", id: 49408))
        XCTAssertEqual(
            upper.encode("a <CAT-TOY> <cat-toy>"), [49406, 320, 49408, 49408, 49407],
            "matched as normalized text is")
        XCTAssertNil(tokenizer.addingToken("<dog-toy>", id: 49408), "the id is taken")
    }

    func testDecodeMatchesTransformers() throws {
        let tokenizer = try loadTokenizer()
        for item in try Self.loadedFixture.get().decode {
            XCTAssertEqual(tokenizer.decode(item.ids), item.text, "decode \(item.ids)")
            XCTAssertEqual(
                tokenizer.decode(item.ids, skippingSpecialTokens: true), item.skipSpecial,
                "decode \(item.ids) skipping special tokens")
        }
    }

    func testConcurrentEncodingGivesTheSameIDs() throws {
        let tokenizer = try loadTokenizer()
        let cases = Array(try Self.loadedFixture.get().cases.prefix(64))
        var results = [[Int]](repeating: [], count: cases.count)
        results.withUnsafeMutableBufferPointer { buffer in
            let results = buffer
            DispatchQueue.concurrentPerform(iterations: cases.count) { i in
                results[i] = tokenizer.encode(cases[i].text)
            }
        }
        XCTAssertEqual(results, cases.map(\.ids), "ids from 64 concurrent encodes")
    }

    // MARK: Code-built tokenizers

    func testCodeBuiltTokenizer() {
        // "a", "b", "c" inside a word and ending one, two merges' results, the specials; the
        // merge "x y" names tokens the vocabulary lacks and is ignored.
        let vocabulary = [
            "a": 0, "b": 1, "c": 2, "a</w>": 3, "b</w>": 4, "c</w>": 5, "ab": 6, "abc</w>": 7,
            "<|startoftext|>": 8, "<|endoftext|>": 9, "!": 10,
        ]
        let tokenizer = CLIPTokenizer(
            vocabulary: vocabulary, merges: [("a", "b"), ("ab", "c</w>"), ("x", "y")], maxLength: 6,
            padToken: "!")
        // "abc": a b c</w> → ab c</w> → abc</w>; "ab": a b</w> has no rule; "c": c</w>.
        XCTAssertEqual(tokenizer.encode("ABC ab  c"), [8, 7, 0, 4, 5, 9])
        XCTAssertEqual(tokenizer.encode("ba", padTo: tokenizer.maxLength), [8, 1, 3, 9, 10, 10])
        XCTAssertEqual(
            tokenizer.encode("d"), [8, 9, 9], "a byte missing from the vocabulary is eos (unk)")
        XCTAssertEqual(tokenizer.vocabularySize, 11)
        XCTAssertEqual(
            tokenizer.decode([8, 7, 0, 4, 5, 9], skippingSpecialTokens: true), "abc ab c")
    }

    func testCodeBuiltFromCLIPFilesMatchesTransformers() throws {
        // Built in code, both special tokens are matched only as written, as in transformers'
        // CLIPTokenizer(vocab:merges:); SD 1.x's config also matches "<|STARTOFTEXT|>", so
        // strings holding it in any case are left out.
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.folder + "/vocab.json"))
        let vocabulary = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Int])
        let lines = try String(contentsOfFile: Self.folder + "/merges.txt", encoding: .utf8)
            .split(separator: "\n").dropFirst()
        let merges = lines.map { line -> (String, String) in
            let parts = line.split(separator: " ")
            return (String(parts[0]), String(parts[1]))
        }
        let tokenizer = CLIPTokenizer(vocabulary: vocabulary, merges: merges)
        let cases = try Self.loadedFixture.get().cases.filter {
            !$0.text.lowercased().contains("startoftext")
        }
        XCTAssertEqual(assertParity(tokenizer, cases), 0, "code-built strings differing")
    }

    // MARK: Broken folders

    /// A writable copy of the fixture folder (without tokens.json and the variants).
    private func scratchFolder() throws -> String {
        let manager = FileManager.default
        let folder = manager.temporaryDirectory.appendingPathComponent("duo-tokenizer-\(UUID())")
            .path
        try manager.createDirectory(atPath: folder, withIntermediateDirectories: true)
        addTeardownBlock { try? manager.removeItem(atPath: folder) }
        for file in [
            "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json",
        ] {
            try manager.copyItem(atPath: Self.folder + "/" + file, toPath: folder + "/" + file)
        }
        return folder
    }

    private func assertLoadFails(
        _ folder: String, naming file: String, _ parts: [String],
        sourceFile: StaticString = #filePath,
        line: UInt = #line
    ) {
        XCTAssertThrowsError(try CLIPTokenizer(directory: folder), file: sourceFile, line: line) {
            error in
            let message = String(describing: error)
            XCTAssertTrue(
                message.contains(folder + "/" + file), "names \(file): \(message)",
                file: sourceFile, line: line)
            XCTAssertFalse(
                message.contains("\n"), "one line: \(message)", file: sourceFile, line: line)
            for part in parts {
                XCTAssertTrue(
                    message.contains(part), "says \(part): \(message)", file: sourceFile, line: line
                )
            }
        }
    }

    private func write(_ text: String, to path: String) throws {
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    func testMissingVocabularyNamesTheFile() throws {
        let folder = try scratchFolder()
        try FileManager.default.removeItem(atPath: folder + "/vocab.json")
        assertLoadFails(
            folder, naming: "vocab.json", ["missing", "expected a JSON object of token"])
    }

    func testGarbledVocabularyNamesTheFile() throws {
        let folder = try scratchFolder()
        try write("{\"a\": 0, \"b\": \n", to: folder + "/vocab.json")
        assertLoadFails(
            folder, naming: "vocab.json", ["not valid JSON at byte", "expected a JSON object"])
        try write("[\"a\", \"b\"]", to: folder + "/vocab.json")
        assertLoadFails(folder, naming: "vocab.json", ["found an array"])
        try write("{\"a\": 0, \"b\": \"one\"}", to: folder + "/vocab.json")
        assertLoadFails(folder, naming: "vocab.json", ["key 'b'", "integer id", "\"one\""])
    }

    func testMissingMergesNamesTheFile() throws {
        let folder = try scratchFolder()
        try FileManager.default.removeItem(atPath: folder + "/merges.txt")
        assertLoadFails(folder, naming: "merges.txt", ["missing", "one \"a b\" per line"])
    }

    func testGarbledMergesNameTheFileAndLine() throws {
        let folder = try scratchFolder()
        try write("#version: 0.2\ni n\nt h e\n", to: folder + "/merges.txt")
        assertLoadFails(
            folder, naming: "merges.txt",
            ["line 3", "two tokens separated by one space", "\"t h e\""])
        try write("#version: 0.2\ni n\n\nt h\n", to: folder + "/merges.txt")
        assertLoadFails(folder, naming: "merges.txt", ["line 3", "found \"\""])
        try write("#version: 0.2\ni n\nq☃ x\n", to: folder + "/merges.txt")
        assertLoadFails(folder, naming: "merges.txt", ["line 3", "tokens of vocab.json", "q☃ x"])
        try Data([0x23, 0xFF, 0xFE, 0x00, 0x0A]).write(
            to: URL(fileURLWithPath: folder + "/merges.txt"))
        assertLoadFails(folder, naming: "merges.txt", ["expected UTF-8 text"])
    }

    func testBadConfigNamesTheFileAndKey() throws {
        let folder = try scratchFolder()
        try FileManager.default.removeItem(atPath: folder + "/special_tokens_map.json")
        try write(
            "{\"pad_token\": \"<|pad|>\", \"model_max_length\": 77}",
            to: folder + "/tokenizer_config.json")
        assertLoadFails(
            folder, naming: "tokenizer_config.json", ["key 'pad_token'", "\"<|pad|>\" is not in"])
        try write("{\"model_max_length\": \"77\"}", to: folder + "/tokenizer_config.json")
        assertLoadFails(
            folder, naming: "tokenizer_config.json",
            ["key 'model_max_length'", "expected an integer"])
        try write("{\"bos_token\": 5}", to: folder + "/tokenizer_config.json")
        assertLoadFails(folder, naming: "tokenizer_config.json", ["key 'bos_token'", "found 5"])
    }

    func testFolderWithoutConfigUsesCLIPDefaults() throws {
        let folder = try scratchFolder()
        for file in ["tokenizer_config.json", "special_tokens_map.json"] {
            try FileManager.default.removeItem(atPath: folder + "/" + file)
        }
        let tokenizer = try CLIPTokenizer(directory: folder)
        XCTAssertEqual(tokenizer.maxLength, 77)
        XCTAssertEqual(tokenizer.padTokenID, 49407)
        // transformers without a config matches both special tokens only as written.
        XCTAssertEqual(
            tokenizer.encode("<|STARTOFTEXT|>"), [49406, 27, 347, 993, 6659, 4160, 91, 285, 49407],
            "transformers' ids for an upper-case bos without a config: plain text")
    }
}
