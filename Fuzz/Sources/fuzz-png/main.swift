import FuzzSupport
import Formats

// A PNG as duo reads images (detector inputs, attack images, `duo inspect`): through libpng's
// simplified API. A decoded image must also encode and decode back to the same pixels.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    decode(bytes)
    // libpng refuses a chunk whose CRC is wrong, and a random mutation almost always breaks
    // it: the same bytes with every CRC made right let mutations reach what lies behind.
    let repaired = withCorrectCRCs(bytes)
    if repaired != bytes { decode(repaired) }
    // The path-taking entry point `duo inspect` uses, on the input as given.
    let path = ScratchFiles.write(UnsafeBufferPointer(start: data, count: size), named: "input.png")
    _ = try? FileInspection.report(path: path)
    return 0
}

private func decode(_ bytes: [UInt8]) {
    _ = try? PNGInfo(data: bytes, path: "input.png")
    guard let image = try? PNGImage(decoding: bytes, path: "input.png") else { return }
    guard let encoded = try? image.encoded(),
        let back = try? PNGImage(decoding: encoded, path: "re-encoded.png"), back == image
    else {
        fatalError(
            "a decoded \(image.width)x\(image.height)x\(image.channels) image "
                + "does not survive encoding")
    }
}

/// `png` with the CRC of each whole chunk after the signature recomputed. A chunk is a
/// 4-byte big-endian length, a 4-byte type, the data and a CRC over type and data.
private func withCorrectCRCs(_ png: [UInt8]) -> [UInt8] {
    var bytes = png
    var start = 8
    while start + 12 <= bytes.count {
        let length = bytes[start..<(start + 4)].reduce(0) { $0 << 8 | Int($1) }
        let crcStart = start + 8 + length
        guard crcStart + 4 <= bytes.count else { break }
        let crc = crc32(bytes[(start + 4)..<crcStart])
        for i in 0..<4 { bytes[crcStart + i] = UInt8(truncatingIfNeeded: crc >> (24 - 8 * i)) }
        start = crcStart + 4
    }
    return bytes
}

/// The CRC-32 PNG uses (ISO 3309: reflected polynomial 0xEDB88320, inverted in and out).
private func crc32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        crc = crcTable[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8)
    }
    return crc ^ 0xFFFF_FFFF
}

private let crcTable: [UInt32] = (0..<256).map { n in
    var c = UInt32(n)
    for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
    return c
}
