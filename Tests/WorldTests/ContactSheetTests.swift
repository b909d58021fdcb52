import Formats
import Foundation
import XCTest

@testable import World

/// A contact sheet of random scenes, for looking at the world. Run with
/// `WORLD_SAMPLES_PNG=reports/world-samples.png swift test --filter ContactSheet` to keep
/// one; the captions are printed in sheet order (row by row).
final class ContactSheetTests: XCTestCase {
    func testContactSheet() throws {
        let world = World()
        let samples = world.sample(count: 64, seed: 2024)
        let cells = samples.map { upscale(WorldImage.png($0.image), by: 4) }
        let sheet = try ImageGrid.make(cells, columns: 8, padding: 4)
        XCTAssertEqual(sheet.width, 8 * 128 + 9 * 4)
        for (i, sample) in samples.enumerated() {
            print("\(i / 8),\(i % 8): \(sample.caption)")
        }
        if let path = ProcessInfo.processInfo.environment["WORLD_SAMPLES_PNG"] {
            try sheet.write(to: path)
            print("wrote \(path)")
        }
    }

    /// Nearest-neighbour upscaling, so single pixels stay visible on the sheet.
    func upscale(_ image: PNGImage, by factor: Int) -> PNGImage {
        let width = image.width * factor
        var pixels = [UInt8](repeating: 0, count: width * image.height * factor * 3)
        for y in 0..<(image.height * factor) {
            for x in 0..<width {
                let source = ((y / factor) * image.width + x / factor) * 3
                for c in 0..<3 { pixels[(y * width + x) * 3 + c] = image.pixels[source + c] }
            }
        }
        return PNGImage(width: width, height: image.height * factor, channels: 3, pixels: pixels)
    }
}
