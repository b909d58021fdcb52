import Formats

/// Conversions between the world's float images and PNG files.
public enum WorldImage {
    /// A channel-major RGB image in [-1, 1] ([3, height, width]) as an 8-bit PNG image,
    /// clamped and rounded to nearest.
    public static func png(
        _ chw: [Float], width: Int = World.size, height: Int = World.size
    ) -> PNGImage {
        precondition(chw.count == 3 * width * height, "expected [3, \(height), \(width)] floats")
        let plane = width * height
        var pixels = [UInt8](repeating: 0, count: 3 * plane)
        for pixel in 0..<plane {
            for c in 0..<3 {
                let value = (chw[c * plane + pixel] + 1) * 127.5
                pixels[pixel * 3 + c] = UInt8(min(255, max(0, value.rounded())))
            }
        }
        return PNGImage(width: width, height: height, channels: 3, pixels: pixels)
    }

    /// A PNG image (any channel layout; alpha over white) as channel-major floats in
    /// [-1, 1], the input of the world's detectors.
    public static func floats(_ image: PNGImage) -> [Float] {
        let rgb = image.rgb()
        let plane = rgb.width * rgb.height
        var chw = [Float](repeating: 0, count: 3 * plane)
        for pixel in 0..<plane {
            for c in 0..<3 { chw[c * plane + pixel] = Float(rgb.pixels[pixel * 3 + c]) / 127.5 - 1 }
        }
        return chw
    }
}

extension World {
    /// The image of `scene` as an 8-bit PNG image.
    public func png(_ scene: SceneSpec) -> PNGImage { WorldImage.png(render(scene)) }
}
