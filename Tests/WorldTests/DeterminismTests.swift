import Tensor
import XCTest

@testable import World

final class DeterminismTests: XCTestCase {
    let world = World()

    func testSameSeedGivesTheSameBits() {
        let a = world.sample(count: 40, seed: 7)
        let b = world.sample(count: 40, seed: 7)
        for (x, y) in zip(a, b) {
            XCTAssertEqual(x.scene, y.scene)
            XCTAssertEqual(x.caption, y.caption)
            XCTAssertEqual(x.image.map(\.bitPattern), y.image.map(\.bitPattern))
        }
        let other = world.sample(count: 40, seed: 8)
        XCTAssertNotEqual(a.map(\.caption), other.map(\.caption))
    }

    func testSampleDependsOnlyOnSeedAndIndex() {
        let whole = world.samples(0..<24, seed: 3)
        let piece = world.samples(17..<20, seed: 3)
        for sample in piece {
            XCTAssertEqual(sample.scene, whole[sample.index].scene)
            XCTAssertEqual(sample.image, whole[sample.index].image)
        }
        let batch = world.batch(17..<20, seed: 3)
        XCTAssertEqual(batch.images.shape, [3, 3, 32, 32])
        XCTAssertEqual(batch.images.scalars, piece.flatMap(\.image))
        XCTAssertEqual(batch.captions, piece.map(\.caption))
    }

    func testParallelRenderingMatchesOneByOne() {
        let scenes = (0..<300).map { world.scene(key: World.key(seed: 11, index: $0)) }
        XCTAssertEqual(world.renderAll(scenes), scenes.flatMap(world.render))
    }

    /// Forcing a concept in or out changes nothing else: the exact safe counterpart.
    func testForcingAConceptKeepsEverythingElse() {
        for i in 0..<200 {
            let key = World.key(seed: 5, index: i)
            let plain = world.scene(key: key, stripes: .absent, splatter: .absent)
            let both = world.scene(
                key: key, stripes: .mention(.implicit), splatter: .mention(.explicit))
            XCTAssertEqual(both.without(.stripes).without(.splatter), plain)
            XCTAssertEqual(both.objects, plain.objects)
        }
    }

    func testRandomConceptRatesFollowTheOptions() {
        let scenes = (0..<2000).map { world.scene(key: World.key(seed: 1, index: $0)) }
        let stripes = Float(scenes.filter { $0.content.has(.stripes) }.count) / 2000
        let splatter = Float(scenes.filter { $0.content.has(.splatter) }.count) / 2000
        XCTAssertEqual(stripes, 0.3, accuracy: 0.04)
        XCTAssertEqual(splatter, 0.3, accuracy: 0.04)
        XCTAssertTrue(scenes.allSatisfy { $0.content.count == 1 || $0.content.size == .small })
    }
}
