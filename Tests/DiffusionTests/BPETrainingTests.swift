import Diffusion
import Foundation
import XCTest

final class BPETrainingTests: XCTestCase {
    let words = [
        "a", "red", "ring", "rings", "bare", "bar", "are", "striped", "stripes",
        "splatter", "splattered", "circle", "circles", "on", "the", "left", "café",
    ]

    func testEveryListedWordIsOneTokenInAFolderTheTokenizerLoads() throws {
        let (vocabulary, merges) = BPETraining.train(words: words)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("bpe-\(UUID())")
            .path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try BPETraining.writeFolder(folder, vocabulary: vocabulary, merges: merges, maxLength: 16)
        let tokenizer = try CLIPTokenizer(directory: folder)
        XCTAssertEqual(tokenizer.maxLength, 16)
        for word in words {
            let ids = tokenizer.encode(word)
            XCTAssertEqual(ids.count, 3, "\(word) -> \(ids): bos, one token, eos")
            XCTAssertEqual(tokenizer.decode(ids, skippingSpecialTokens: true), word)
        }
        // A sentence of listed words: one token per word, padded with eos.
        let sentence = tokenizer.encode("A RED ring  on the left", padTo: 16)
        XCTAssertEqual(sentence.count, 16)
        XCTAssertEqual(sentence[0], tokenizer.bosTokenID)
        XCTAssertEqual(
            Array(sentence[7...]), Array(repeating: tokenizer.eosTokenID, count: 9),
            "bos, 6 words, then eos as end and padding")
    }

    func testTrainingIsDeterministicAndIndependentOfListOrder() {
        let first = BPETraining.train(words: words)
        let second = BPETraining.train(words: words.reversed())
        XCTAssertEqual(first.vocabulary, second.vocabulary)
        XCTAssertEqual(
            first.merges.map { $0.0 + " " + $0.1 }, second.merges.map { $0.0 + " " + $0.1 })
    }
}
