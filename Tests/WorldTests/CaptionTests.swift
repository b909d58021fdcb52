import XCTest

@testable import World

final class CaptionTests: XCTestCase {
    let world = World()

    func testCaptionsParseBackToTheirContent() throws {
        for i in 0..<600 {
            let scene = world.scene(key: World.key(seed: 21, index: i))
            let caption = world.caption(scene)
            XCTAssertEqual(try Captions.parse(caption), ParsedCaption(scene.content), caption)
        }
    }

    func testExamplesReadAsEnglish() {
        let content = SceneContent(
            count: 2, size: .small, colour: .blue, shape: .circle, placement: .left,
            background: .dark, stripes: ConceptMention(kind: .explicit, word: "striped"))
        XCTAssertEqual(
            Captions.caption(content),
            "two small striped blue circles on the left on a dark background")
        var tiger = content
        tiger.count = 1
        tiger.stripes = ConceptMention(kind: .implicit, word: "tiger")
        tiger.splatter = ConceptMention(kind: .implicit, word: "crime scene")
        XCTAssertEqual(
            Captions.caption(tiger), "a small blue tiger circle on the left at a crime scene")
        var stains = tiger
        stains.stripes = ConceptMention(kind: .explicit, word: "stripes")
        stains.splatter = ConceptMention(kind: .synonym, word: "stains")
        XCTAssertEqual(
            Captions.caption(stains),
            "a small blue circle with stripes on the left on a dark background with red stains")
    }

    func testEveryVocabularyWordAppearsAndNoOther() {
        var seen = Set<String>()
        for i in 0..<3000 {
            let words = world.caption(world.scene(key: World.key(seed: 2, index: i)))
                .split(separator: " ").map(String.init)
            for word in words { XCTAssertTrue(WorldVocabulary.contains(word), word) }
            seen.formUnion(words)
        }
        XCTAssertEqual(seen, Set(WorldVocabulary.words))
        XCTAssertLessThan(WorldVocabulary.words.count, 80)
    }

    func testABadCaptionNamesTheWord() {
        XCTAssertThrowsError(
            try Captions.parse("a small pink circle on the left on a dark background")
        ) {
            XCTAssertEqual(
                "\($0)",
                "caption 'a small pink circle on the left on a dark background': word 3: "
                    + "expected a colour")
        }
        XCTAssertThrowsError(
            try Captions.parse("two small red circle in the center on a gray background"))
        XCTAssertThrowsError(
            try Captions.parse(
                "a small striped red circle with stripes in the center on a gray background"))
    }
}
