import CPNG

// The only file that talks to libpng. It uses the simplified API (png_image_*), which keeps
// libpng's setjmp/longjmp error handling inside libpng and reports failures, and warnings,
// in png_image.message instead of printing them: a bad file becomes a thrown error, never a
// crash or stray output on stderr.

/// An 8-bit image: `height` rows of `width` pixels, each `channels` interleaved bytes.
///
/// Channels are 1 (gray), 2 (gray, alpha), 3 (RGB) or 4 (RGBA); alpha is straight (not
/// premultiplied). Whatever the file stores (1- to 16-bit samples, a palette with or without
/// transparency) is decoded to this form.
public struct PNGImage: Equatable, Sendable {
    /// Pixels per row.
    public let width: Int
    /// Rows.
    public let height: Int
    /// Bytes per pixel: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA.
    public let channels: Int
    /// Row-major, interleaved samples: `pixels[(y * width + x) * channels + c]`.
    public let pixels: [UInt8]

    /// Wraps `pixels`, which must hold `width * height * channels` bytes.
    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        // pixels: [height, width, channels], row-major
        precondition(width > 0 && height > 0, "image size \(width)x\(height) must be positive")
        precondition((1...4).contains(channels), "channels must be 1...4, got \(channels)")
        precondition(
            pixels.count == width * height * channels,
            "\(pixels.count) bytes for a \(width)x\(height)x\(channels) image")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// Reads and fully decodes the PNG at `path`. Throws `FormatError` (naming the file and
    /// libpng's reason) for a missing, truncated or corrupt file.
    public init(contentsOf path: String) throws {
        self = try PNGImage(decoding: try readWholeFile(path), path: path)
    }

    /// Decodes a PNG held in memory; `path` names it in errors.
    public init(decoding data: [UInt8], path: String) throws {
        let decoded = try LibPNG.read(data, path: path, decodePixels: true)
        self.init(
            width: decoded.width, height: decoded.height, channels: decoded.channels,
            pixels: decoded.pixels ?? [])
    }

    /// The image encoded as an 8-bit PNG with its own channel layout.
    public func encoded() throws -> [UInt8] {
        // First call sizes the output, second fills it (libpng's documented two-step use);
        // each call consumes its png_image, hence a fresh one for each.
        var size: png_alloc_size_t = 0
        try LibPNG.encode(self) { image, input in
            png_image_write_to_memory(image, nil, &size, 0, input, 0, nil)
        }
        var bytes = [UInt8](repeating: 0, count: Int(size))
        try bytes.withUnsafeMutableBytes { output in
            try LibPNG.encode(self) { image, input in
                png_image_write_to_memory(image, output.baseAddress, &size, 0, input, 0, nil)
            }
        }
        return Array(bytes.prefix(Int(size)))
    }

    /// Writes the image as an 8-bit PNG (gray, gray+alpha, RGB or RGBA as it is held),
    /// atomically: a temporary file in the same directory renamed over `path`. The file
    /// carries duo's mark (`PNGMark`).
    public func write(to path: String) throws {
        let bytes: [UInt8]
        do {
            bytes = PNGMark.marked(try encoded())
        } catch let error as FormatError {
            throw FormatError(error.kind, path: path, reason: error.reason)
        }
        try writeAtomically(to: path) { try $0.write(bytes) }
    }
}

/// The libpng calls and the translation of its formats and messages.
enum LibPNG {
    /// Decoded images are refused beyond this many bytes: a header may claim up to
    /// 1,000,000 × 1,000,000 pixels, and that must be an error, not a failed allocation.
    static let maxDecodedBytes = 1 << 30

    /// The most decoded bytes one byte of a PNG file can stand for: deflate expands at most
    /// 1032:1, and decoding at most 32:1 more (1-bit palette indices to RGBA bytes).
    static let maxExpansion = 1032 * 32

    /// Runs `body` with a zeroed png_image on the heap and frees it afterwards. libpng
    /// keeps the image's address between calls (its error handler writes the message
    /// there), so the struct must not move: a Swift `var` passed `&image` gives no such
    /// promise, and a copy returned from a function certainly breaks it.
    private static func withImage<Result>(
        _ body: (UnsafeMutablePointer<png_image>) throws -> Result
    ) rethrows -> Result {
        let image = UnsafeMutablePointer<png_image>.allocate(capacity: 1)
        image.initialize(to: png_image())
        image.pointee.version = UInt32(PNG_IMAGE_VERSION)
        defer {
            png_image_free(image)
            image.deallocate()
        }
        return try body(image)
    }

    /// Reads the header (signature and the chunks before the image data) and, when
    /// `decodePixels`, the whole image as 8-bit samples in the file's own channels:
    /// palettes expanded (to RGBA when the file has tRNS), 16-bit samples scaled to 8 bits.
    static func read(
        _ data: [UInt8], path: String, decodePixels: Bool
    ) throws -> (width: Int, height: Int, channels: Int, pixels: [UInt8]?) {
        guard !data.isEmpty else {
            throw FormatError(.invalidPNG, path: path, reason: "not a valid PNG: file is empty")
        }
        return try withImage { image in
            // libpng reads from this buffer until finish_read, so both calls stay inside it.
            try data.withUnsafeBytes { buffer in
                guard png_image_begin_read_from_memory(image, buffer.baseAddress, buffer.count) != 0
                else { throw error(image.pointee, path: path) }
                let width = Int(image.pointee.width)
                let height = Int(image.pointee.height)
                guard width * height * 4 <= maxDecodedBytes else {
                    throw FormatError(
                        .invalidPNG, path: path,
                        reason: "image \(width)x\(height) is too large to decode")
                }
                image.pointee.format &= PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA
                let channels = channels(of: image.pointee.format)
                guard decodePixels else { return (width, height, channels, nil) }
                // libpng finds missing image data only while decoding into the buffer; a small
                // file must not get to claim a buffer of a gigabyte first.
                guard width * height * channels <= data.count * maxExpansion else {
                    throw FormatError(
                        .invalidPNG, path: path,
                        reason: "image \(width)x\(height) cannot be held in a file of "
                            + "\(data.count) bytes (truncated or corrupt)")
                }
                // Untagged 16-bit files are taken as sRGB, like 8-bit ones, so 16 → 8 bits is
                // a plain rescale; by default libpng would take them as linear and re-encode.
                image.pointee.flags |= UInt32(PNG_IMAGE_FLAG_16BIT_sRGB)
                var pixels = [UInt8](repeating: 0, count: width * height * channels)
                let ok = pixels.withUnsafeMutableBytes { output in
                    png_image_finish_read(image, nil, output.baseAddress, 0, nil)
                }
                guard ok != 0 else { throw error(image.pointee, path: path) }
                return (width, height, channels, pixels)
            }
        }
    }

    /// Runs one libpng write call on a png_image describing `picture`'s 8-bit pixels.
    static func encode(
        _ picture: PNGImage,
        _ call: (UnsafeMutablePointer<png_image>, UnsafeRawPointer?) -> Int32
    ) throws {
        try withImage { image in
            image.pointee.width = UInt32(picture.width)
            image.pointee.height = UInt32(picture.height)
            // The inverse of `channels(of:)`: bit 0 alpha, bit 1 color (PNG_FORMAT_GRAY...RGBA).
            let hasAlpha = picture.channels == 2 || picture.channels == 4
            image.pointee.format =
                (picture.channels >= 3 ? PNG_FORMAT_FLAG_COLOR : 0)
                | (hasAlpha ? PNG_FORMAT_FLAG_ALPHA : 0)
            let ok = picture.pixels.withUnsafeBytes { call(image, $0.baseAddress) }
            guard ok != 0 else {
                throw FormatError(
                    .io, path: nil, reason: "cannot encode PNG: \(message(image.pointee))")
            }
        }
    }

    /// Channels of a simplified-API format: 1 + color (2) + alpha (1), as
    /// PNG_IMAGE_SAMPLE_CHANNELS computes it (the macro itself is not imported into Swift).
    static func channels(of format: UInt32) -> Int {
        Int(format & (PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA)) + 1
    }

    /// libpng's message for a failed read, e.g. "IDAT: CRC error", as a `FormatError`.
    static func error(_ image: png_image, path: String) -> FormatError {
        FormatError(.invalidPNG, path: path, reason: "not a valid PNG: \(message(image))")
    }

    private static func message(_ image: png_image) -> String {
        let text = withUnsafeBytes(of: image.message) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        return text.isEmpty ? "libpng failed without a message" : text
    }
}
