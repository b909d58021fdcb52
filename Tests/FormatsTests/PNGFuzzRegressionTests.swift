import XCTest

@testable import Formats

/// PNG files that made the decoder misbehave; each must be refused with a one-line error
/// before anything large is allocated.
final class PNGFuzzRegressionTests: XCTestCase {
    /// 68 bytes: an IHDR of 16384x16384 RGBA (correct CRC), an IDAT of ten zero bytes and
    /// IEND. Decoding allocated the whole 1 GiB image before libpng found the data short,
    /// which fuzz-png's malloc limit reports as a crash. (Found while writing the harness:
    /// a random mutation rarely keeps the IHDR's CRC right.)
    static let smallFileClaimingAGigabyte: [UInt8] = [
        0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D,
        0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x40, 0x00,
        0x08, 0x06, 0x00, 0x00, 0x00, 0xA9, 0xC8, 0x10, 0x84, 0x00, 0x00, 0x00,
        0x0B, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x60, 0x80, 0x01, 0x00,
        0x00, 0x0A, 0x00, 0x01, 0x7F, 0x80, 0x74, 0x5E, 0x00, 0x00, 0x00, 0x00,
        0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
    ]

    func testSmallFileClaimingAHugeImageIsRefusedBeforeDecoding() throws {
        let bytes = Self.smallFileClaimingAGigabyte
        let error = assertFormatError(.invalidPNG, path: "huge.png") {
            try PNGImage(decoding: bytes, path: "huge.png")
        }
        XCTAssertEqual(
            error?.reason,
            "image 16384x16384 cannot be held in a file of 68 bytes (truncated or corrupt)")
        // The header alone is still readable: PNGInfo does not look at the image data.
        let info = try PNGInfo(data: bytes, path: "huge.png")
        XCTAssertEqual([info.width, info.height, info.channels], [16384, 16384, 4])
    }

    /// fuzz-png's own find once it repaired CRCs: a palette image of 327680x768 in 235
    /// bytes, within the 1 GiB cap, so decoding allocated 720 MiB before failing.
    func testFuzzerFoundPaletteImageIsRefusedBeforeDecoding() {
        let path = fixturePath("fuzz/palette-327680x768-in-235-bytes.png")
        let error = assertFormatError(.invalidPNG, path: path) { try PNGImage(contentsOf: path) }
        XCTAssertEqual(
            error?.reason,
            "image 327680x768 cannot be held in a file of 235 bytes (truncated or corrupt)")
    }
}
