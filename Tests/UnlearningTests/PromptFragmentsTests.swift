import Concepts
import Tensor
import XCTest

@testable import Unlearning

/// Fragments of a pair's prompts: the concept's words kept, the safe side the same words
/// less the concept's.
final class PromptFragmentsTests: XCTestCase {
    let unsafe = "two small striped red circles on the left on a dark background"
    let safe = "two small red circles on the left on a dark background"
    let words: Set<String> = ["striped", "stripes"]

    func fragment(_ draws: [Float]) -> (unsafe: String, safe: String) {
        PromptFragments.make(
            unsafePrompt: unsafe, safePrompt: safe, conceptWords: words, draws: draws)
    }

    func testEveryFragmentKeepsTheConceptAndItsSafeSideIsTheSameWordsWithoutIt() {
        let n = unsafe.split(separator: " ").count
        var seen = Set<String>()
        for seed in 0..<200 {
            let draws = RandomKey(seed: UInt64(seed)).uniform(
                count: PromptFragments.drawCount(wordCount: n))
            let (u, s) = fragment(draws)
            seen.insert(u)
            let unsafeWords = u.split(separator: " ").map(String.init)
            XCTAssertTrue(unsafeWords.contains("striped"), u)
            XCTAssertEqual(unsafeWords.filter { $0 != "striped" }.joined(separator: " "), s)
            // The kept words keep their order: a subsequence of the caption.
            var rest = unsafe.split(separator: " ").map(String.init)[...]
            for word in unsafeWords where word != "striped" {
                guard let at = rest.firstIndex(of: word) else {
                    return XCTFail("\(u) out of order")
                }
                rest = rest[(at + 1)...]
            }
        }
        XCTAssertGreaterThan(seen.count, 100, "fragments vary")
        XCTAssertTrue(seen.contains("striped"), "the concept word alone is among them")
        XCTAssertTrue(seen.contains { $0.contains("striped striped") }, "repeats are among them")
    }

    func testDrawsDecideWhichWordsStayAndWhetherTheConceptRepeats() {
        let n = unsafe.split(separator: " ").count
        var draws = [Float](repeating: 0.9, count: PromptFragments.drawCount(wordCount: n))
        XCTAssertEqual(fragment(draws).unsafe, "striped")
        XCTAssertEqual(fragment(draws).safe, "")
        draws[n + 2] = 0.5  // keep the words drawn below 0.5:
        draws[0] = 0.1  // "two"
        draws[n] = 0.1  // repeat the concept word ...
        draws[n + 1] = 0.99  // ... four times
        XCTAssertEqual(fragment(draws).unsafe, "two striped striped striped striped")
        XCTAssertEqual(fragment(draws).safe, "two")
        let all = [Float](repeating: 0.3, count: PromptFragments.drawCount(wordCount: n))
        XCTAssertEqual(
            fragment(all.enumerated().map { $0 == n ? 0.9 : $0 == n + 2 ? 0.5 : $1 }).unsafe,
            unsafe)
    }

    func testAPromptWithoutTheConceptIsKeptWhole() {
        let draws = [Float](repeating: 0.9, count: 20)
        let result = PromptFragments.make(
            unsafePrompt: "a tiger circle", safePrompt: "a circle", conceptWords: words,
            draws: draws)
        XCTAssertEqual(result.unsafe, "a tiger circle")
        XCTAssertEqual(result.safe, "a circle")
    }

    func testAFragmentShareNeedsPromptedPairs() throws {
        var options = UnlearningOptions()
        options.fragmentShare = 0.5
        XCTAssertThrowsError(
            try UnlearningSettings.merged(model: .init(), concept: .init(), options: options)
        ) { XCTAssertTrue("\($0)".contains("--fragment-share 0.5 needs prompted pairs"), "\($0)") }
        var concept = ConceptFile.UnlearningDefaults()
        concept.fragmentShare = 0.5
        XCTAssertEqual(
            try UnlearningSettings.merged(model: .init(), concept: concept, options: .init())
                .fragmentShare, 0, "a concept file's, on a prompt-free run: dropped")
    }
}
