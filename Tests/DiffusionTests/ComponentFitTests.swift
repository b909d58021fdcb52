import Diffusion
import Foundation
import XCTest

/// A model folder whose components do not fit each other fails to load with one line
/// naming the config and the key, instead of a precondition at the first prompt (before:
/// a tokenizer padding past the text encoder's positions trapped in the embedding).
final class ComponentFitTests: XCTestCase {
    var folder: String!

    override func setUpWithError() throws {
        folder =
            FileManager.default.temporaryDirectory.appendingPathComponent("duo-fit-\(UUID())").path
        try FileManager.default.copyItem(
            atPath: ModelParityTests.models + "/pipeline", toPath: folder)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: folder) }

    func edit(_ file: String, _ from: String, _ to: String) throws {
        let path = folder + "/" + file
        let text = try String(contentsOfFile: path, encoding: .utf8)
        XCTAssertTrue(text.contains(from), "\(file) holds \(from)")
        try text.replacingOccurrences(of: from, with: to).write(
            toFile: path, atomically: true, encoding: .utf8)
    }

    func assertLoadFails(_ expected: String, line: UInt = #line) {
        XCTAssertThrowsError(try StableDiffusion.load(directory: folder), line: line) { error in
            XCTAssertTrue("\(error)".contains(expected), "\(error)", line: line)
        }
    }

    func testTheFixtureFits() throws {
        XCTAssertNoThrow(try StableDiffusion.load(directory: folder))
    }

    func testATokenizerLongerThanTheTextEncodersPositions() throws {
        try edit(
            "tokenizer/tokenizer_config.json", "\"model_max_length\": 8",
            "\"model_max_length\": 100")
        assertLoadFails(
            "text_encoder/config.json: key 'max_position_embeddings': 77 positions, but the tokenizer pads prompts to 100"
        )
    }

    /// An id past the text encoder's embedding rows trapped in the embedding lookup.
    func testATokenIDPastTheTextEncodersEmbeddings() throws {
        try edit("tokenizer/tokenizer.json", "\"<|endoftext|>\": 999", "\"<|endoftext|>\": 5000")
        assertLoadFails(
            "tokenizer: holds token ids 998 to 5000, but the text encoder has embeddings 0 to 999")
    }

    func testADamagedModelIndexIsAnError() throws {
        try "{not json".write(
            toFile: folder + "/model_index.json", atomically: true, encoding: .utf8)
        assertLoadFails("model_index.json: not valid JSON at byte 1")
    }
}
