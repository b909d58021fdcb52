import Foundation

/// An error reading or writing a file in one of duo's formats (safetensors, PNG).
///
/// Its description is always a single line that names the file and, where one is involved,
/// the tensor: `model.safetensors: tensor 'unet.conv_in.weight': shape [2, 3] of F32 needs
/// 24 bytes, data_offsets span 20`. The CLI prints it as is, so it must never wrap.
public struct FormatError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What went wrong, for callers and tests that branch on the cause.
    public enum Kind: String, Equatable, Sendable {
        /// The file does not exist.
        case fileNotFound
        /// The file exists but could not be opened, read, mapped or written.
        case io
        /// The file is too short to hold what its header promises, or is cut off.
        case truncated
        /// The safetensors header is malformed (length, UTF-8, JSON, structure).
        case invalidHeader
        /// A tensor entry in the header is malformed (fields, types, offsets).
        case invalidEntry
        /// A tensor's dtype is not one safetensors defines.
        case unknownDType
        /// A tensor's dtype is known, but the requested conversion does not support it.
        case unsupportedDType
        /// A tensor's byte size does not match its shape and dtype.
        case sizeMismatch
        /// Two tensors claim overlapping bytes.
        case overlap
        /// The tensor asked for is not in the file.
        case missingTensor
        /// The file is not a valid PNG (signature, chunk, CRC, zlib data, ...).
        case invalidPNG
        /// The file is neither safetensors nor PNG.
        case unknownFormat
        /// The caller passed values that cannot be written (duplicate names, bad shapes).
        case invalidArgument
    }

    /// The cause.
    public let kind: Kind
    /// The file involved, as the caller named it; `nil` for in-memory operations.
    public let path: String?
    /// The tensor involved, if any.
    public let tensor: String?
    /// What was expected and what was found, in a few words.
    public let reason: String

    /// Creates an error; `reason` should say what was expected and what was found.
    public init(_ kind: Kind, path: String?, tensor: String? = nil, reason: String) {
        self.kind = kind
        self.path = path
        self.tensor = tensor
        self.reason = reason
    }

    /// `path: tensor 'name': reason`, on one line whatever the parts contain.
    public var description: String {
        var parts: [String] = []
        if let path { parts.append(path) }
        if let tensor { parts.append("tensor '\(tensor)'") }
        parts.append(reason)
        return Self.singleLine(parts.joined(separator: ": "))
    }

    /// Escapes line breaks (a file or tensor name may hold one) so the message stays one line.
    static func singleLine(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\u{0B}", "\u{0C}", "\u{85}", "\u{2028}", "\u{2029}":
                out += "\\u{\(String(scalar.value, radix: 16))}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}

// ArgumentParser prints `errorDescription` when there is one; without it, Foundation's
// bridging could print a generic "The operation could not be completed" instead.
extension FormatError: LocalizedError {
    public var errorDescription: String? { description }
}
