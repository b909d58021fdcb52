import Formats

/// Resizing 8-bit images as Pillow's `Image.resize` does (its "convolution" resampling,
/// libImaging/Resample.c), so that CLIP's preprocessing gives what transformers' PIL image
/// processor gives, bit for bit.
///
/// Each axis is a separable convolution: output pixel i samples the input around its centre
/// (i + ½)·scale with a filter stretched by the scale when shrinking (antialiasing, which a
/// plain bilinear or bicubic interpolation lacks), weights normalized to sum to 1. Pillow
/// rounds the weights to 22-bit fixed point and each pass's result to 8 bits, the horizontal
/// pass first; both are mirrored here, since a float pipeline would differ from it by up to
/// a level per pixel. An axis whose size does not change is left alone, so an image already
/// at the target size comes back unchanged.
public enum ImageResampling {
    /// The filters CLIP processors use, numbered as Pillow's `Image.Resampling` (and
    /// `resample` in preprocessor_config.json).
    public enum Filter: Int, Sendable {
        /// A triangle of radius 1.
        case bilinear = 2
        /// Keys' cubic with a = −0.5 (Pillow's), radius 2; CLIP's processors use it.
        case bicubic = 3

        var support: Double { self == .bilinear ? 1 : 2 }

        func weight(_ x: Double) -> Double {
            let x = abs(x)
            switch self {
            case .bilinear:
                return x < 1 ? 1 - x : 0
            case .bicubic:
                let a = -0.5
                if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
                if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
                return 0
            }
        }
    }

    /// `image` resized to width × height with `filter`.
    public static func resize(_ image: PNGImage, width: Int, height: Int, filter: Filter)
        -> PNGImage
    {
        precondition(width > 0 && height > 0, "resize to \(width)x\(height)")
        var image = image
        if width != image.width {
            image = pass(image, along: .horizontal, to: width, filter: filter)
        }
        if height != image.height {
            image = pass(image, along: .vertical, to: height, filter: filter)
        }
        return image
    }

    /// Bits of the fixed-point weights: 32 minus 8 for the samples and 2 for the sums.
    static let precisionBits = 22

    /// For output i along an axis of `inSize` samples: the first input sample it reads and
    /// its weights in fixed point.
    static func weights(inSize: Int, outSize: Int, filter: Filter) -> [(first: Int, weights: [Int])]
    {
        let scale = Double(inSize) / Double(outSize)
        let stretch = max(scale, 1)
        let support = filter.support * stretch
        let inverseStretch = 1 / stretch
        let one = Double(1 << precisionBits)
        return (0..<outSize).map { i in
            let centre = (Double(i) + 0.5) * scale
            // Int() truncates toward zero, as the C casts Pillow's bounds go through.
            let first = max(Int(centre - support + 0.5), 0)
            let end = min(Int(centre + support + 0.5), inSize)
            var raw = (first..<end).map {
                filter.weight((Double($0) - centre + 0.5) * inverseStretch)
            }
            let total = raw.reduce(0, +)
            if total != 0 { raw = raw.map { $0 / total } }
            return (first, raw.map { Int($0 < 0 ? $0 * one - 0.5 : $0 * one + 0.5) })
        }
    }

    enum Axis { case horizontal, vertical }

    /// One axis resized: each output sample is the fixed-point weighted sum of its inputs,
    /// rounded (half a unit added, then a floor shift) and clamped to 0...255.
    static func pass(_ image: PNGImage, along axis: Axis, to size: Int, filter: Filter)
        -> PNGImage
    {
        let (w, h, c) = (image.width, image.height, image.channels)
        let horizontal = axis == .horizontal
        let table = weights(inSize: horizontal ? w : h, outSize: size, filter: filter)
        let (outW, outH) = horizontal ? (size, h) : (w, size)
        // Step between neighbouring input samples along the axis, in bytes.
        let step = horizontal ? c : w * c
        let half = 1 << (precisionBits - 1)
        var out = [UInt8](repeating: 0, count: outW * outH * c)
        image.pixels.withUnsafeBufferPointer { source in
            for y in 0..<outH {
                for x in 0..<outW {
                    let entry = table[horizontal ? x : y]
                    let start = horizontal ? (y * w + entry.first) * c : (entry.first * w + x) * c
                    for channel in 0..<c {
                        var sum = half
                        var offset = start + channel
                        for k in entry.weights {
                            sum += Int(source[offset]) * k
                            offset += step
                        }
                        out[(y * outW + x) * c + channel] = UInt8(
                            min(max(sum >> precisionBits, 0), 255))
                    }
                }
            }
        }
        return PNGImage(width: outW, height: outH, channels: c, pixels: out)
    }
}
