import XCTest

@testable import Formats

final class ImageGridTests: XCTestCase {
    private func solid(_ color: [UInt8], width: Int = 2, height: Int = 2) -> PNGImage {
        PNGImage(
            width: width, height: height, channels: color.count,
            pixels: Array([[UInt8]](repeating: color, count: width * height).joined()))
    }

    private func pixel(_ image: PNGImage, _ x: Int, _ y: Int) -> [UInt8] {
        let start = (y * image.width + x) * image.channels
        return Array(image.pixels[start..<(start + image.channels)])
    }

    func testPlacesImagesRowByRowAndLeavesBlankCells() throws {
        let red = solid([255, 0, 0])
        let green = solid([0, 255, 0])
        let blue = solid([0, 0, 255])
        let gray = RGBColor(red: 9, green: 9, blue: 9)
        let grid = try ImageGrid.make([red, green, blue], columns: 2, padding: 1, background: gray)
        // 2 columns × 2 px + 3 paddings; 2 rows likewise.
        XCTAssertEqual(grid.width, 7)
        XCTAssertEqual(grid.height, 7)
        XCTAssertEqual(grid.channels, 3)
        XCTAssertEqual(pixel(grid, 0, 0), [9, 9, 9], "outer border")
        XCTAssertEqual(pixel(grid, 1, 1), [255, 0, 0], "image 0, top-left cell")
        XCTAssertEqual(pixel(grid, 2, 2), [255, 0, 0])
        XCTAssertEqual(pixel(grid, 3, 1), [9, 9, 9], "padding between columns")
        XCTAssertEqual(pixel(grid, 4, 1), [0, 255, 0], "image 1, top-right cell")
        XCTAssertEqual(pixel(grid, 5, 2), [0, 255, 0])
        XCTAssertEqual(pixel(grid, 1, 3), [9, 9, 9], "padding between rows")
        XCTAssertEqual(pixel(grid, 1, 4), [0, 0, 255], "image 2, bottom-left cell")
        XCTAssertEqual(pixel(grid, 4, 4), [9, 9, 9], "blank cell after the last image")
        XCTAssertEqual(pixel(grid, 6, 6), [9, 9, 9])
    }

    func testConvertsGrayAndAlphaToRGB() throws {
        let gray = solid([100], width: 1, height: 1)
        let opaque = solid([10, 20, 30, 255], width: 1, height: 1)
        let clear = solid([10, 20, 30, 0], width: 1, height: 1)
        let half = solid([255, 0, 0, 128], width: 1, height: 1)
        let grid = try ImageGrid.make(
            [gray, opaque, clear, half], columns: 4, padding: 0, background: .black)
        XCTAssertEqual(grid.pixels, [100, 100, 100, 10, 20, 30, 0, 0, 0, 128, 0, 0])
    }

    func testMismatchedSizesAndBadLayoutsThrow() {
        let small = solid([1, 2, 3])
        let large = solid([1, 2, 3], width: 3)
        let error = assertFormatError(.invalidArgument, path: nil) {
            try ImageGrid.make([small, small, large], columns: 2)
        }
        XCTAssertTrue(error?.description.contains("image 2 is 3x2 but image 0 is 2x2") ?? false)
        assertFormatError(.invalidArgument, path: nil) { try ImageGrid.make([], columns: 2) }
        assertFormatError(.invalidArgument, path: nil) { try ImageGrid.make([small], columns: 0) }
        assertFormatError(.invalidArgument, path: nil) {
            try ImageGrid.make([small], columns: 1, padding: -1)
        }
    }
}
