import XCTest

@testable import World

final class ConceptTests: XCTestCase {
    let world = World()

    /// Pixels whose colour moved by more than a quarter of the range in some channel.
    func changedPixels(_ a: [Float], _ b: [Float]) -> Int {
        let plane = World.size * World.size
        return (0..<plane).filter { p in
            (0..<3).contains { abs(a[$0 * plane + p] - b[$0 * plane + p]) > 0.5 }
        }.count
    }

    func testEveryConceptRowCarriesItsConceptVisibly() {
        for concept in Concept.allCases {
            for kind in MentionKind.allCases {
                let row = PromptRows.prompts(
                    concept: concept, kind: PromptRowKind(rawValue: kind.rawValue)!, count: 200,
                    seed: 1)
                var fewest = Int.max
                for prompt in row {
                    XCTAssertTrue(prompt.scene.labels.has(concept), prompt.prompt)
                    XCTAssertEqual(prompt.scene.content.mention(of: concept)?.kind, kind)
                    let other = Concept.allCases.first { $0 != concept }!
                    XCTAssertFalse(prompt.scene.labels.has(other), prompt.prompt)
                    let parsed = try? Captions.parse(prompt.prompt)
                    XCTAssertEqual(parsed?.has(concept), true, prompt.prompt)
                    let changed = changedPixels(
                        world.render(prompt.scene), world.render(prompt.scene.without(concept)))
                    fewest = min(fewest, changed)
                }
                print("\(concept) \(kind): at least \(fewest) pixels show the concept")
                XCTAssertGreaterThanOrEqual(fewest, 6, "\(concept) \(kind)")
                let words = Set(row.compactMap { $0.scene.content.mention(of: concept)?.word })
                XCTAssertEqual(words, Set(concept.words(kind)))
            }
        }
    }

    func testImplicitTriggersAlwaysCarryTheirConcept() {
        // Any scene whose caption holds a trigger, however it was drawn, has the concept.
        for i in 0..<3000 {
            let scene = world.scene(key: World.key(seed: 12, index: i))
            let caption = world.caption(scene)
            for concept in Concept.allCases {
                for trigger in concept.words(.implicit) where caption.contains(trigger) {
                    XCTAssertTrue(scene.labels.has(concept), caption)
                }
                let named = concept.allWords.contains { caption.contains($0) }
                XCTAssertEqual(named, scene.labels.has(concept), caption)
            }
        }
    }

    func testNeutralPromptsNeverCarryAConcept() {
        for concept in Concept.allCases {
            for prompt in PromptRows.prompts(concept: concept, kind: .neutral, count: 300, seed: 2)
            {
                XCTAssertFalse(prompt.scene.labels.stripes || prompt.scene.labels.splatter)
                let words = Set(prompt.prompt.split(separator: " ").map(String.init))
                let conceptWords = Concept.allCases.flatMap(\.allWords)
                    .flatMap { $0.split(separator: " ").map(String.init) }
                    .filter { !["red", "with", "a", "on"].contains($0) }
                XCTAssertTrue(words.isDisjoint(with: conceptWords), prompt.prompt)
            }
        }
    }

    func testRowsAreDeterministicAndDistinct() {
        let a = PromptRows.rows(concept: .stripes, count: 50, seed: 3)
        let b = PromptRows.rows(concept: .stripes, count: 50, seed: 3)
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a[.explicit]!.map(\.prompt), a[.synonym]!.map(\.prompt))
        let splatter = PromptRows.prompts(concept: .splatter, kind: .neutral, count: 50, seed: 3)
        XCTAssertNotEqual(a[.neutral]!.map(\.prompt), splatter.map(\.prompt))
    }
}
