import Diffusion
import Foundation
import XCTest

/// Tokenizer folders that crashed loading or the first prompt, found by `make fuzz`
/// (fuzz-tokenizer) or while writing it; each must now be refused with a one-line error
/// naming the file and key.
final class TokenizerFuzzRegressionTests: XCTestCase {
    /// A folder holding `files` (name → contents), removed after the test.
    private func folder(_ files: [String: String]) throws -> String {
        let manager = FileManager.default
        let folder = manager.temporaryDirectory.appendingPathComponent("duo-fuzz-\(UUID())").path
        try manager.createDirectory(atPath: folder, withIntermediateDirectories: true)
        addTeardownBlock { try? manager.removeItem(atPath: folder) }
        for (name, text) in files {
            try text.write(toFile: folder + "/" + name, atomically: true, encoding: .utf8)
        }
        return folder
    }

    private func assertLoadFails(
        _ folder: String, naming file: String, _ parts: [String], line: UInt = #line
    ) {
        XCTAssertThrowsError(try CLIPTokenizer(directory: folder), line: line) { error in
            let message = String(describing: error)
            XCTAssertFalse(message.contains("\n"), "one line: \(message)", line: line)
            for part in [folder + "/" + file] + parts {
                XCTAssertTrue(message.contains(part), "says \(part): \(message)", line: line)
            }
        }
    }

    /// The fuzzer's vocab.json gave a byte's character the id 244444444444449, which the
    /// encoder's Int32 tables could not hold: a trap while building the tokenizer.
    func testVocabularyIDBeyondInt32IsRefused() throws {
        let folder = try folder([
            "vocab.json": #"{"<|startoftext|>": 0, "<|endoftext|>": 1, "Ľ": 244444444444449}"#,
            "merges.txt": "#version: 0.2\n",
        ])
        assertLoadFails(folder, naming: "vocab.json", ["key 'Ľ'", "2147483647", "244444444444449"])
    }

    /// The same trap through tokenizer.json's `model.vocab`.
    func testCombinedVocabularyIDBeyondInt32IsRefused() throws {
        let folder = try folder([
            "tokenizer.json": #"""
            {"model": {"type": "BPE", "merges": [],
             "vocab": {"<|startoftext|>": 0, "<|endoftext|>": 1, "a": 3000000000}}}
            """#
        ])
        assertLoadFails(folder, naming: "tokenizer.json", ["key 'model.vocab.a'", "3000000000"])
    }

    /// And through an added token: its id became the unknown id the encoder stores.
    func testAddedTokenIDBeyondInt32IsRefused() throws {
        let folder = try folder([
            "vocab.json": #"{"<|startoftext|>": 0, "a": 1}"#,
            "merges.txt": "#version: 0.2\n",
            "tokenizer_config.json": #"""
            {"added_tokens_decoder": {"3000000000": {"content": "<|endoftext|>", "special": true}}}
            """#,
        ])
        assertLoadFails(
            folder, naming: "tokenizer_config.json",
            ["key 'added_tokens_decoder.3000000000'", "2147483647"])
    }

    /// A config's model_max_length of 10^11 loaded, and the first prompt padded to it asked
    /// for 800 GB (spotted while writing fuzz-tokenizer, confirmed with its malloc limit).
    func testHugeModelMaxLengthIsRefused() throws {
        let folder = try folder([
            "vocab.json": #"{"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2}"#,
            "merges.txt": "#version: 0.2\n",
            "tokenizer_config.json": #"{"model_max_length": 100000000000}"#,
        ])
        assertLoadFails(
            folder, naming: "tokenizer_config.json",
            ["key 'model_max_length'", "from 2 to 65536", "100000000000"])
        // transformers' "no limit" still falls back to CLIP's 77 positions.
        try #"{"model_max_length": 1000000000000000019884624838656}"#.write(
            toFile: folder + "/tokenizer_config.json", atomically: true, encoding: .utf8)
        XCTAssertEqual(try CLIPTokenizer(directory: folder).maxLength, 77)
    }
}
