/// An 8-bit RGB color.
public struct RGBColor: Equatable, Sendable {
    public var red: UInt8
    public var green: UInt8
    public var blue: UInt8

    /// Creates a color from its three 8-bit components.
    public init(red: UInt8, green: UInt8, blue: UInt8) {
        self.red = red
        self.green = green
        self.blue = blue
    }

    /// White, the default background of grids and of alpha compositing.
    public static let white = RGBColor(red: 255, green: 255, blue: 255)
    /// Black.
    public static let black = RGBColor(red: 0, green: 0, blue: 0)
}

extension PNGImage {
    /// The image as 3-channel RGB: gray is repeated into the three channels, alpha is
    /// composited over `background` (rounded to nearest).
    public func rgb(background: RGBColor = .white) -> PNGImage {
        if channels == 3 { return self }
        let backdrop = [background.red, background.green, background.blue]
        var rgb = [UInt8](repeating: 0, count: width * height * 3)
        for pixel in 0..<(width * height) {
            let source = pixel * channels
            let hasColor = channels >= 3
            let alpha = channels == 2 || channels == 4 ? Int(pixels[source + channels - 1]) : 255
            for c in 0..<3 {
                let value = Int(pixels[source + (hasColor ? c : 0)])
                let mixed = (value * alpha + Int(backdrop[c]) * (255 - alpha) + 127) / 255
                rgb[pixel * 3 + c] = UInt8(mixed)
            }
        }
        return PNGImage(width: width, height: height, channels: 3, pixels: rgb)
    }
}

/// Contact sheets: same-size images laid out in a grid, for reports and sample previews.
public enum ImageGrid {
    /// Lays `images` out row by row, `columns` per row, with `padding` pixels of
    /// `background` around and between the cells. Cells past the last image (when the
    /// count is not a multiple of `columns`) are left as background. Images are converted
    /// to RGB (`PNGImage.rgb(background:)`); all must have the same width and height.
    ///
    /// Output size: `columns * w + (columns + 1) * padding` by `rows * h + (rows + 1) * padding`
    /// with `rows = ceil(count / columns)`.
    public static func make(
        _ images: [PNGImage], columns: Int, padding: Int = 2, background: RGBColor = .white
    ) throws -> PNGImage {
        try validate(images, columns: columns, padding: padding)
        let cellWidth = images[0].width
        let cellHeight = images[0].height
        let rows = (images.count + columns - 1) / columns
        let width = columns * cellWidth + (columns + 1) * padding
        let height = rows * cellHeight + (rows + 1) * padding
        let fill = [background.red, background.green, background.blue]
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) {
            pixels[i * 3..<(i * 3 + 3)] = fill[...]
        }
        for (index, image) in images.enumerated() {
            let rgb = image.rgb(background: background)
            let left = padding + (index % columns) * (cellWidth + padding)
            let top = padding + (index / columns) * (cellHeight + padding)
            for y in 0..<cellHeight {
                let source = y * cellWidth * 3
                let target = ((top + y) * width + left) * 3
                pixels[target..<(target + cellWidth * 3)] =
                    rgb.pixels[source..<(source + cellWidth * 3)]
            }
        }
        return PNGImage(width: width, height: height, channels: 3, pixels: pixels)
    }

    private static func validate(_ images: [PNGImage], columns: Int, padding: Int) throws {
        func fail(_ reason: String) -> FormatError {
            FormatError(.invalidArgument, path: nil, reason: "image grid: \(reason)")
        }
        guard let first = images.first else { throw fail("no images") }
        guard columns > 0 else { throw fail("columns must be positive, got \(columns)") }
        guard padding >= 0 else { throw fail("padding must not be negative, got \(padding)") }
        for (index, image) in images.enumerated()
        where image.width != first.width || image.height != first.height {
            throw fail(
                "image \(index) is \(image.width)x\(image.height) but image 0 is "
                    + "\(first.width)x\(first.height)")
        }
    }
}

extension PNGImage {
    /// The image enlarged `factor` times by repeating pixels (nearest neighbour), as RGB:
    /// small images made readable in grids and reports.
    public func scaled(by factor: Int) -> PNGImage {
        let rgb = self.rgb()
        let (w, h) = (rgb.width * factor, rgb.height * factor)
        var pixels = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h {
            for x in 0..<w {
                let source = ((y / factor) * rgb.width + x / factor) * 3
                let target = (y * w + x) * 3
                pixels[target..<(target + 3)] = rgb.pixels[source..<(source + 3)]
            }
        }
        return PNGImage(width: w, height: h, channels: 3, pixels: pixels)
    }
}
