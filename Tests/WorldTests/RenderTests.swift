import Foundation
import TestSupport
import XCTest

@testable import World

final class RenderTests: XCTestCase {
    let world = World()

    /// The pixel holding `(x, y)`, as RGB in [-1, 1].
    func pixel(_ image: [Float], x: Float, y: Float) -> [Float] {
        let index = Int(y) * World.size + Int(x)
        return (0..<3).map { image[$0 * World.size * World.size + index] }
    }

    func unit(_ rgb: (UInt8, UInt8, UInt8)) -> [Float] {
        [rgb.0, rgb.1, rgb.2].map { Float($0) / 127.5 - 1 }
    }

    /// The object colour nearest to `rgb`.
    func nearestColour(_ rgb: [Float]) -> ObjectColour {
        ObjectColour.allCases.min { a, b in
            zip(unit(a.rgb), rgb).map { ($0 - $1) * ($0 - $1) }.reduce(0, +)
                < zip(unit(b.rgb), rgb).map { ($0 - $1) * ($0 - $1) }.reduce(0, +)
        }!
    }

    func testObjectCentresShowTheMainColour() {
        for i in 0..<500 {
            let scene = world.scene(key: World.key(seed: 4, index: i), splatter: .absent)
            let image = world.render(scene)
            for object in scene.objects {
                let centre = pixel(image, x: object.centerX, y: object.centerY)
                XCTAssertEqual(nearestColour(centre), scene.content.colour, world.caption(scene))
                if !scene.content.has(.stripes) {
                    assertClose(
                        centre, unit(scene.content.colour.rgb), atol: 1e-5, world.caption(scene))
                }
            }
        }
    }

    func testCornersShowTheBackgroundAndValuesStayInRange() {
        for i in 0..<200 {
            let scene = world.scene(key: World.key(seed: 6, index: i), splatter: .absent)
            let image = world.render(scene)
            XCTAssertTrue(image.allSatisfy { $0 >= -1 && $0 <= 1 })
            let corners = [(0, 0), (31, 0), (0, 31), (31, 31)].map {
                pixel(image, x: Float($0.0), y: Float($0.1))
            }
            let background = unit(scene.content.background.rgb)
            // Objects stay off at least three corners (a side's line touches at most one end).
            let clear = corners.filter { zip($0, background).allSatisfy { abs($0 - $1) < 1e-5 } }
            XCTAssertGreaterThanOrEqual(clear.count, 2)
        }
    }

    func testPNGRoundTrip() {
        let scene = world.scene(key: World.key(seed: 9, index: 0))
        let png = world.png(scene)
        XCTAssertEqual([png.width, png.height, png.channels], [32, 32, 3])
        let back = WorldImage.floats(png)
        for (a, b) in zip(back, world.render(scene)) { XCTAssertEqual(a, b, accuracy: 1 / 127.5) }
    }

    func testRenderingIsFast() {
        let scenes = (0..<2000).map { world.scene(key: World.key(seed: 1, index: $0)) }
        let start = Date()
        var checksum: Float = 0
        for scene in scenes { checksum += world.render(scene)[0] }
        let perMinute = Double(scenes.count) / Date().timeIntervalSince(start) * 60
        print(
            "world render: \(Int(perMinute)) images per minute on one core (checksum \(checksum))")
        // Debug builds are several times slower than release; this only catches disasters.
        XCTAssertGreaterThan(perMinute, 10_000)
    }
}
