/// GPT-2's reversible map between bytes and printable characters, in which CLIP's vocabulary
/// is written: a token is a string of these characters, one per UTF-8 byte, so that no token
/// holds whitespace or control characters.
///
/// Printable bytes (`!`…`~`, `¡`…`¬`, `®`…`ÿ`) stand for themselves; the 68 others map, in
/// byte order, to U+0100 and up.
enum ByteLevel {
    /// `characters[b]` is the character that stands for byte `b`.
    static let characters: [Unicode.Scalar] = {
        var characters = [Unicode.Scalar](repeating: "\0", count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            if isPrintable(byte) {
                characters[byte] = Unicode.Scalar(UInt8(byte))
            } else {
                characters[byte] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return characters
    }()

    /// The byte each character of `characters` stands for.
    static let bytes: [Unicode.Scalar: UInt8] = {
        var bytes: [Unicode.Scalar: UInt8] = [:]
        for (byte, character) in characters.enumerated() { bytes[character] = UInt8(byte) }
        return bytes
    }()

    private static func isPrintable(_ byte: Int) -> Bool {
        (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte)
    }

    /// The token string for a byte sequence (one character per byte).
    static func token<S: Sequence>(for bytes: S) -> String where S.Element == UInt8 {
        var token = String.UnicodeScalarView()
        for byte in bytes { token.append(characters[Int(byte)]) }
        return String(token)
    }

    /// The bytes a token string stands for, or nil if it holds a character outside the map.
    static func bytes(of token: String) -> [UInt8]? {
        var result: [UInt8] = []
        for scalar in token.unicodeScalars {
            guard let byte = bytes[scalar] else { return nil }
            result.append(byte)
        }
        return result
    }
}
