import Foundation
import XCTest

@testable import Formats

/// duo's mark in the PNGs it writes: a tEXt chunk that libpng reads past and that tells
/// duo's own images from anyone else's.
final class PNGMarkTests: XCTestCase {
    var scratch = ""

    override func setUpWithError() throws {
        scratch =
            FileManager.default.temporaryDirectory.appendingPathComponent("png-mark-\(UUID())").path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: scratch)
    }

    /// The CRC-32 check value of ISO 3309 / ITU-T V.42, which PNG uses: "123456789" gives
    /// 0xCBF43926 (the catalogue value every CRC-32 implementation is checked against).
    func testTheChunkChecksumIsCRC32() {
        XCTAssertEqual(PNGMark.crc32(Array("123456789".utf8)), 0xCBF4_3926)
        XCTAssertEqual(PNGMark.crc32([]), 0)
    }

    func testWrittenImagesCarryTheMarkAndDecodeUnchanged() throws {
        let image = PNGImage(
            width: 3, height: 2, channels: 3, pixels: (0..<18).map { UInt8($0 * 13) })
        let path = scratch + "/a.png"
        try image.write(to: path)
        XCTAssertTrue(PNGMark.isMarked(path: path))
        XCTAssertEqual(try PNGImage(contentsOf: path), image)
    }

    func testOtherFilesAreNotMarked() throws {
        let image = PNGImage(width: 2, height: 2, channels: 1, pixels: [0, 64, 128, 255])
        let unmarked = scratch + "/b.png"
        FileManager.default.createFile(atPath: unmarked, contents: Data(try image.encoded()))
        XCTAssertFalse(PNGMark.isMarked(path: unmarked))
        let text = scratch + "/c.png"
        try "Software duo".write(toFile: text, atomically: true, encoding: .utf8)
        XCTAssertFalse(PNGMark.isMarked(path: text))
        XCTAssertFalse(PNGMark.isMarked(path: scratch + "/missing.png"))
    }
}
