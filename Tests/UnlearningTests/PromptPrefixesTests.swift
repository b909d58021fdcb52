import Concepts
import Tensor
import XCTest

@testable import Unlearning

/// Prefixes before a pair's prompts: words of the pairs' prompts, never the concept's, the
/// same before both sides.
final class PromptPrefixesTests: XCTestCase {
    let unsafe = "two small striped red circles on the left on a dark background"
    let safe = "two small red circles on the left on a dark background"
    let concept: Set<String> = ["striped", "stripes"]

    func words(_ prompts: [String]) -> [String] {
        prompts.flatMap { $0.split(separator: " ").map(String.init) }
    }

    func testTheVocabularyIsTheWordsLessTheConceptsOnceEach() {
        let vocabulary = PromptPrefixes.vocabulary(
            words: words([unsafe, safe, "a Blue square with stripes at a crime scene"]),
            conceptWords: Array(concept) + ["crime scene"])
        XCTAssertEqual(vocabulary, vocabulary.sorted())
        XCTAssertEqual(Set(vocabulary).count, vocabulary.count)
        XCTAssertFalse(vocabulary.contains("striped") || vocabulary.contains("stripes"))
        XCTAssertFalse(
            vocabulary.contains("crime") || vocabulary.contains("scene"), "a phrase's words")
        XCTAssertTrue(vocabulary.contains("blue") && vocabulary.contains("with"), "\(vocabulary)")
        XCTAssertEqual(vocabulary.count, 14)
    }

    /// The tokenizer's whole words: every word of the embedded model's captions is one of
    /// its tokens, so the vocabulary holds them (but the concept's) and tokenizes back.
    func testTheTokenizersVocabularyHoldsItsWholeWordsButTheConcepts() throws {
        let tokenizer = TinyWorldModel.model.tokenizer
        let vocabulary = PromptPrefixes.vocabulary(
            tokenizer: tokenizer, conceptWords: ["striped", "stripes", "zebra"])
        XCTAssertFalse(vocabulary.contains { ["striped", "stripes", "zebra"].contains($0) })
        for word in ["red", "circles", "background", "splatter"] {
            XCTAssertTrue(vocabulary.contains(word), word)
        }
        for word in vocabulary {
            XCTAssertEqual(tokenizer.tokenIDs(word).count, 1, word)
            XCTAssertFalse(word.contains(" "), word)
        }
    }

    func testEveryPrefixIsOneToFiveVocabularyWordsBeforeBothPrompts() {
        let vocabulary = PromptPrefixes.vocabulary(
            words: words([unsafe, safe]), conceptWords: Array(concept))
        var lengths = Set<Int>()
        var prefixes = Set<String>()
        for seed in 0..<300 {
            let draws = RandomKey(seed: UInt64(seed)).uniform(count: PromptPrefixes.drawCount)
            let (u, s) = PromptPrefixes.make(
                unsafePrompt: unsafe, safePrompt: safe, vocabulary: vocabulary, draws: draws)
            XCTAssertTrue(u.hasSuffix(" " + unsafe) && s.hasSuffix(" " + safe), u)
            let prefix = String(u.dropLast(unsafe.count + 1))
            XCTAssertEqual(String(s.dropLast(safe.count + 1)), prefix, "the same words before both")
            let words = prefix.split(separator: " ").map(String.init)
            XCTAssertTrue(words.allSatisfy(vocabulary.contains), prefix)
            lengths.insert(words.count)
            prefixes.insert(prefix)
        }
        XCTAssertEqual(lengths, Set(1...PromptPrefixes.maxWords))
        XCTAssertGreaterThan(prefixes.count, 200, "prefixes vary")
    }

    func testDrawsDecideTheLengthAndTheWords() {
        let vocabulary = ["blue", "circle", "dark"]
        var draws = [Float](repeating: 0, count: PromptPrefixes.drawCount)
        XCTAssertEqual(
            PromptPrefixes.make(
                unsafePrompt: "x", safePrompt: "y", vocabulary: vocabulary, draws: draws
            ).unsafe, "blue x")
        draws[0] = 0.99  // five words
        draws[1...5] = [0.99, 0.5, 0.1, 0.7, 0.34]
        XCTAssertEqual(
            PromptPrefixes.make(
                unsafePrompt: "x", safePrompt: "y", vocabulary: vocabulary, draws: draws
            ).safe, "dark circle blue dark circle y")
        XCTAssertEqual(
            PromptPrefixes.make(unsafePrompt: "x", safePrompt: "y", vocabulary: [], draws: draws)
                .unsafe, "x", "no vocabulary: the prompts as they are")
    }

    func testAPrefixShareNeedsPromptedPairsAndIsRecorded() throws {
        var options = UnlearningOptions()
        options.prefixShare = 0.5
        XCTAssertThrowsError(
            try UnlearningSettings.merged(model: .init(), concept: .init(), options: options)
        ) { XCTAssertTrue("\($0)".contains("--prefix-share 0.5 needs prompted pairs"), "\($0)") }
        var concept = ConceptFile.UnlearningDefaults()
        concept.prefixShare = 0.5
        XCTAssertEqual(
            try UnlearningSettings.merged(model: .init(), concept: concept, options: .init())
                .prefixShare, 0, "a concept file's, on a prompt-free run: dropped")
        options.promptedShare = 1
        var settings = try UnlearningSettings.merged(
            model: .init(), concept: .init(), options: options)
        settings.conceptWords = ["striped"]
        let fields = Dictionary(settings.fields.map { ($0.key, $0.value.line) }) { a, _ in a }
        XCTAssertEqual(fields["prefix_share"], "0.5")
        XCTAssertEqual(fields["concept_words"], #"["striped"]"#)
        settings.prefixShare = 0
        XCTAssertNil(
            settings.fields.first { $0.key == "prefix_share" }, "off: older runs keep their config")
    }

    /// Token prefixes range over the whole vocabulary but the special tokens and the
    /// concept's words, and are decoded together (a character split over byte-level tokens
    /// comes out whole) with the prompt's, the same before both prompts.
    func testTokenPrefixesAreDecodedTogetherAndNeverTheConceptsWords() throws {
        let tokenizer = TinyWorldModel.model.tokenizer
        let tokens = PromptPrefixes.tokenVocabulary(
            tokenizer: tokenizer, conceptWords: ["striped", "with stripes"])
        let striped = try XCTUnwrap(tokenizer.tokenIDs("striped").first)
        XCTAssertEqual(tokenizer.tokenIDs("striped"), [striped])
        XCTAssertFalse(tokens.contains(striped))
        XCTAssertFalse(tokens.contains(tokenizer.tokenIDs("stripes")[0]))
        XCTAssertFalse(
            tokens.contains(tokenizer.bosTokenID) || tokens.contains(tokenizer.eosTokenID))
        XCTAssertGreaterThan(tokens.count, tokenizer.vocabularySize - 8)
        // "é" is two bytes, two byte-level tokens in a byte-level BPE without the pair.
        let pieces = tokenizer.tokenIDs("é")
        let draws: [Float] =
            [0.25] + pieces.map { (Float(tokens.firstIndex(of: $0)!) + 0.5) / Float(tokens.count) }
            + [0, 0, 0]
        let prompts = PromptPrefixes.make(
            unsafePrompt: "a striped circle", safePrompt: "a circle", tokens: tokens,
            tokenizer: tokenizer, draws: Array(draws.prefix(PromptPrefixes.drawCount)))
        XCTAssertEqual(prompts.unsafe, "é a striped circle")
        XCTAssertEqual(prompts.safe, "é a circle")
        // A piece without an end of word runs into the prompt's first word, as in the
        // prompts UnlearnDiffAtk checks.
        let piece = try XCTUnwrap(
            tokens.first {
                tokenizer.decode([$0]) == "ar"
                    && tokenizer.decode([$0, tokenizer.tokenIDs("two")[0]]) == "artwo"
            },
            "a piece 'ar' that is not a word's end")
        let glued = PromptPrefixes.make(
            unsafePrompt: "two striped circles", safePrompt: "two circles", tokens: tokens,
            tokenizer: tokenizer,
            draws: [
                0, (Float(tokens.firstIndex(of: piece)!) + 0.5) / Float(tokens.count), 0, 0, 0, 0,
            ])
        XCTAssertEqual(glued.unsafe, "artwo striped circles")
        XCTAssertEqual(glued.safe, "artwo circles")
    }
}
