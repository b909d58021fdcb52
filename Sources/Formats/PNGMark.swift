import Foundation

/// The mark duo puts in the PNG files it writes: a `tEXt` chunk `Software` = `duo`
/// (PNG specification, 11.3.4.3: tEXt, and its predefined keyword Software). With it, a
/// command that writes to a path the user gave can tell its own earlier image, which it may
/// replace, from anyone else's, which it must not.
public enum PNGMark {
    static let keyword = "Software"
    static let text = "duo"

    /// `png` (a whole PNG file, as libpng wrote it) with the mark after its IHDR chunk.
    static func marked(_ png: [UInt8]) -> [UInt8] {
        // signature (8 bytes), then IHDR: length (4), type (4), 13 bytes of data, CRC (4).
        let afterHeader = 8 + 4 + 4 + 13 + 4
        guard png.count > afterHeader else { return png }
        let data = Array(keyword.utf8) + [0] + Array(text.utf8)
        let typeAndData = Array("tEXt".utf8) + data
        let chunk = bigEndian(UInt32(data.count)) + typeAndData + bigEndian(crc32(typeAndData))
        return Array(png[..<afterHeader]) + chunk + Array(png[afterHeader...])
    }

    /// Whether the file at `path` is a PNG that carries the mark (false for anything else,
    /// a missing or unreadable file included).
    public static func isMarked(path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        // The mark sits right after IHDR; a few hundred bytes cover it in any duo file.
        let head = [UInt8]((try? handle.read(upToCount: 256)) ?? Data())
        let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        guard head.starts(with: signature) else { return false }
        let data = Array(keyword.utf8) + [0] + Array(text.utf8)
        var offset = 8
        while offset + 8 <= head.count {
            let length = head[offset..<offset + 4].reduce(0) { $0 << 8 | Int($1) }
            let type = String(decoding: head[offset + 4..<offset + 8], as: UTF8.self)
            let end = offset + 8 + length
            if type == "IDAT" || end > head.count { return false }
            if type == "tEXt", Array(head[offset + 8..<end]) == data { return true }
            offset = end + 4
        }
        return false
    }

    private static func bigEndian(_ value: UInt32) -> [UInt8] {
        [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: value >> $0) }
    }

    /// The CRC-32 PNG chunks carry (ISO 3309; PNG specification, annex D), bit by bit:
    /// the chunk here is a few bytes.
    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? 0xEDB8_8320 ^ (crc >> 1) : crc >> 1 }
        }
        return ~crc
    }
}
