import Foundation
import XCTest

@testable import Formats

/// Decoding the hand-encoded PNGs of the fixture script to the pixels it encoded, refusing
/// corrupt ones cleanly, and writing PNGs.
final class PNGImageTests: XCTestCase {
    private let expected = Expected.shared

    func testDecodesEveryFixtureToThePixelsPythonEncoded() throws {
        XCTAssertGreaterThanOrEqual(expected.png.count, 8)
        for (file, want) in expected.png {
            let image = try PNGImage(contentsOf: fixturePath(file))
            XCTAssertEqual(image.width, want.width, file)
            XCTAssertEqual(image.height, want.height, file)
            XCTAssertEqual(image.channels, want.channels, file)
            XCTAssertEqual(
                image.pixels, want.pixels, "\(file): pixels differ from the encoded ones")
        }
    }

    func testInfoReportsTheFileHeader() throws {
        for (file, want) in expected.png {
            let info = try PNGInfo(contentsOf: fixturePath(file))
            XCTAssertEqual(info.width, want.width, file)
            XCTAssertEqual(info.height, want.height, file)
            XCTAssertEqual(info.channels, want.channels, file)
            XCTAssertEqual(info.bitDepth, want.bitDepth, file)
            XCTAssertEqual(info.colorType.rawValue, want.colorType, file)
        }
    }

    func testCorruptFilesThrowOneLineErrorsNamingTheFile() {
        XCTAssertGreaterThanOrEqual(expected.corruptPng.count, 5)
        for file in expected.corruptPng {
            let path = fixturePath(file)
            let error = assertFormatError(.invalidPNG, path: path) {
                try PNGImage(contentsOf: path)
            }
            XCTAssertTrue(error?.reason.hasPrefix("not a valid PNG: ") ?? false, file)
            XCTAssertGreaterThan(error?.reason.count ?? 0, "not a valid PNG: ".count, file)
        }
        let notPNG = fixturePath("png/not_a_png.png")
        assertFormatError(.invalidPNG, path: notPNG) { try PNGInfo(contentsOf: notPNG) }
    }

    func testMissingFileNamesPath() {
        let path = fixturePath("png/missing.png")
        assertFormatError(.fileNotFound, path: path) { try PNGImage(contentsOf: path) }
    }

    func testWriteThenReadKeepsEveryChannelLayout() throws {
        let directory = try makeTemporaryDirectory(self)
        for channels in 1...4 {
            let pixels = (0..<(5 * 3 * channels)).map { UInt8(($0 * 37 + channels) % 256) }
            let image = PNGImage(width: 5, height: 3, channels: channels, pixels: pixels)
            let path = directory + "/c\(channels).png"
            try image.write(to: path)
            XCTAssertEqual(try PNGImage(contentsOf: path), image, "\(channels) channels")
            let info = try PNGInfo(contentsOf: path)
            XCTAssertEqual(info.bitDepth, 8)
            XCTAssertEqual(info.colorType, [.gray, .grayAlpha, .rgb, .rgba][channels - 1])
        }
        XCTAssertEqual(try directoryEntries(directory), ["c1.png", "c2.png", "c3.png", "c4.png"])
    }

    func testWrittenBytesDecodeToTheFixturePixels() throws {
        // Re-encode a Python-made fixture: the decoded pixels must survive unchanged.
        let want = try XCTUnwrap(expected.png["png/rgb8.png"])
        let original = try PNGImage(contentsOf: fixturePath("png/rgb8.png"))
        let reread = try PNGImage(decoding: original.encoded(), path: "memory")
        XCTAssertEqual(reread.pixels, want.pixels)
    }

    func testFailedWriteLeavesNothing() throws {
        let directory = try makeTemporaryDirectory(self)
        let image = PNGImage(width: 1, height: 1, channels: 3, pixels: [1, 2, 3])
        let path = directory + "/no/such/dir/out.png"
        assertFormatError(.io, path: path) { try image.write(to: path) }
        XCTAssertEqual(try directoryEntries(directory), [])
    }
}
