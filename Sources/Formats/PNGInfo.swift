/// How a PNG file stores its pixels (the IHDR color type).
public enum PNGColorType: String, Sendable {
    case gray = "gray"
    case grayAlpha = "gray+alpha"
    case rgb = "RGB"
    case rgba = "RGBA"
    case palette = "palette"

    /// The IHDR color type code → case; `nil` for codes the PNG specification does not define.
    init?(code: UInt8) {
        switch code {
        case 0: self = .gray
        case 2: self = .rgb
        case 3: self = .palette
        case 4: self = .grayAlpha
        case 6: self = .rgba
        default: return nil
        }
    }
}

/// What a PNG file's header says, without decoding the pixels.
public struct PNGInfo: Equatable, Sendable {
    /// Pixels per row.
    public let width: Int
    /// Rows.
    public let height: Int
    /// Channels `PNGImage` decodes the file to: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA
    /// (a palette gives 3, or 4 when the file has a transparency chunk).
    public let channels: Int
    /// Bits per sample in the file: 1, 2, 4, 8 or 16 (palette indices for palette files).
    public let bitDepth: Int
    /// How the file stores color.
    public let colorType: PNGColorType

    /// Reads the header of the PNG at `path`: the signature and the chunks before the image
    /// data are checked, the image data is not (use `PNGImage(contentsOf:)` for that).
    public init(contentsOf path: String) throws {
        try self.init(data: try readWholeFile(path), path: path)
    }

    /// Reads the header of a PNG held in memory; `path` names it in errors.
    public init(data: [UInt8], path: String) throws {
        let (width, height, channels, _) = try LibPNG.read(data, path: path, decodePixels: false)
        // libpng accepted the stream, so it opens with the signature and a well-formed IHDR:
        // bytes 24 and 25 are its bit depth and color type, which the simplified API omits.
        guard data.count > 25, let colorType = PNGColorType(code: data[25]) else {
            throw FormatError(.invalidPNG, path: path, reason: "not a valid PNG: bad IHDR")
        }
        self.width = width
        self.height = height
        self.channels = channels
        self.bitDepth = Int(data[24])
        self.colorType = colorType
    }
}
