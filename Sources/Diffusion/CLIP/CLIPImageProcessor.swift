import Formats
import Foundation
import Tensor

/// transformers' CLIPImageProcessor, as its PIL backend applies it (the processor published
/// CLIP scores were computed with): convert to RGB, resize the shortest side to
/// `size.shortest_edge` (the other side ⌊size · long / short⌋), center-crop to `crop_size`,
/// rescale by `rescale_factor` (1/255), normalize by `image_mean` and `image_std`.
///
/// Resizing is Pillow's (`ImageResampling`), so the pixel values equal transformers' PIL
/// backend's; its torchvision backend (transformers 5's default where torchvision is
/// installed) resizes in floating point without 8-bit rounding between the passes and
/// differs from it, and from this, by up to a level of a pixel.
public struct CLIPImageProcessor: Sendable {
    /// What the resize aims for.
    public enum Size: Equatable, Sendable {
        /// The shorter side becomes this, the aspect ratio kept.
        case shortestEdge(Int)
        case exact(height: Int, width: Int)
    }

    /// nil: `do_resize` false.
    public var size: Size?
    public var filter: ImageResampling.Filter
    /// nil: `do_center_crop` false.
    public var crop: (height: Int, width: Int)?
    /// nil: `do_rescale` false.
    public var rescaleFactor: Double?
    /// Per channel; nil: `do_normalize` false.
    public var mean: [Float]?
    public var std: [Float]?
    public var convertsToRGB: Bool
    /// The file read, for error messages.
    public let path: String

    /// Reads `preprocessor_config.json`, with CLIPImageProcessor's defaults for absent keys.
    public init(file path: String) throws {
        let config = try ConfigFile(path: path)
        self.path = path
        size =
            try config.bool("do_resize", default: true)
            ? try Self.size(config, "size", default: .shortestEdge(224)) : nil
        let resample = try config.int("resample", default: 3)
        guard let filter = ImageResampling.Filter(rawValue: resample) else {
            throw ModelError(
                file: path, key: "resample",
                "expected 2 (bilinear) or 3 (bicubic), found \(resample)")
        }
        self.filter = filter
        crop =
            try config.bool("do_center_crop", default: true)
            ? try Self.cropSize(config) : nil
        rescaleFactor =
            try config.bool("do_rescale", default: true)
            ? try Self.double(config, "rescale_factor", default: 1 / 255) : nil
        convertsToRGB = try config.bool("do_convert_rgb", default: true)
        guard try config.bool("do_normalize", default: true) else { return }
        // OpenAI's CLIP statistics, transformers' defaults.
        mean = try Self.triple(config, "image_mean", default: [0.48145466, 0.4578275, 0.40821073])
        std = try Self.triple(config, "image_std", default: [0.26862954, 0.26130258, 0.27577711])
        guard std?.contains(0) == false else {
            throw ModelError(file: path, key: "image_std", "expected 3 non-zero numbers")
        }
    }

    /// images -> [B, 3, H, W]: every image must come out at the same size (a crop size
    /// sees to that).
    public func pixelValues(_ images: [PNGImage]) throws -> Tensor {
        var values: [Float] = []
        var shape: (height: Int, width: Int)?
        for image in images {
            let prepared = try prepare(image)
            if let shape, shape != (prepared.height, prepared.width) {
                throw ModelError(
                    file: path,
                    "images come out at \(shape.width)x\(shape.height) and \(prepared.width)x\(prepared.height); expected one size (set crop_size)"
                )
            }
            shape = (prepared.height, prepared.width)
            values += channelsFirst(prepared)
        }
        let (height, width) = shape ?? (0, 0)
        return Tensor(values, shape: [images.count, 3, height, width])
    }

    /// One image converted, resized and cropped, still 8-bit.
    func prepare(_ image: PNGImage) throws -> PNGImage {
        var image = image
        if convertsToRGB, image.channels == 1 {
            image = PNGImage(
                width: image.width, height: image.height, channels: 3,
                pixels: image.pixels.flatMap { [$0, $0, $0] })
        }
        guard image.channels == 3 else {
            throw ModelError(
                file: path,
                "an image with \(image.channels) channels; expected RGB (or gray, with do_convert_rgb)"
            )
        }
        if let size {
            let (height, width) = outputSize(size, height: image.height, width: image.width)
            image = ImageResampling.resize(image, width: width, height: height, filter: filter)
        }
        if let crop { image = centerCropped(image, height: crop.height, width: crop.width) }
        return image
    }

    /// transformers' `get_resize_output_image_size` without a maximum: the long side is
    /// size · long / short, truncated.
    func outputSize(_ size: Size, height: Int, width: Int) -> (height: Int, width: Int) {
        switch size {
        case .exact(let h, let w): return (h, w)
        case .shortestEdge(let edge):
            let (short, long) = (min(height, width), max(height, width))
            let longEdge = Int(Double(edge * long) / Double(short))
            return width <= height ? (longEdge, edge) : (edge, longEdge)
        }
    }

    /// The centred height × width window; where the image is smaller it is padded with
    /// zeros, the image at offset ⌈(crop − side) / 2⌉, as transformers' `center_crop`.
    func centerCropped(_ image: PNGImage, height: Int, width: Int) -> PNGImage {
        // Floor division: a negative offset is padding.
        func offset(_ side: Int, _ crop: Int) -> Int {
            Int((Double(side - crop) / 2).rounded(.down))
        }
        let (top, left) = (offset(image.height, height), offset(image.width, width))
        let c = image.channels
        var pixels = [UInt8](repeating: 0, count: height * width * c)
        for y in 0..<height where (0..<image.height).contains(y + top) {
            for x in 0..<width where (0..<image.width).contains(x + left) {
                let from = ((y + top) * image.width + x + left) * c
                for k in 0..<c { pixels[(y * width + x) * c + k] = image.pixels[from + k] }
            }
        }
        return PNGImage(width: width, height: height, channels: c, pixels: pixels)
    }

    /// [3, H, W] values: rescaled in float64 then rounded to float32 (numpy's `rescale`),
    /// normalized in float32 (its `normalize`).
    func channelsFirst(_ image: PNGImage) -> [Float] {
        let plane = image.width * image.height
        var out = [Float](repeating: 0, count: 3 * plane)
        for i in 0..<plane {
            for k in 0..<3 {
                let sample = image.pixels[i * 3 + k]
                var v = rescaleFactor.map { Float(Double(sample) * $0) } ?? Float(sample)
                if let mean, let std { v = (v - mean[k]) / std[k] }
                out[k * plane + i] = v
            }
        }
        return out
    }

    /// `size`: {"shortest_edge": n}, {"height": h, "width": w}, or a plain n (the shortest
    /// edge, as CLIP's processor reads it).
    static func size(_ config: ConfigFile, _ key: String, default fallback: Size) throws -> Size {
        guard let value = config.values[key] else { return fallback }
        if case .number = value { return .shortestEdge(try config.int(key)) }
        let members = try object(config, key, value)
        if members.has("longest_edge") {
            throw ModelError(
                file: config.path, key: "\(key).longest_edge",
                "a longest edge is not supported (expected shortest_edge alone, or height and width)"
            )
        }
        if members.has("shortest_edge") {
            return .shortestEdge(try positive(members, "shortest_edge", in: key))
        }
        return .exact(
            height: try positive(members, "height", in: key),
            width: try positive(members, "width", in: key))
    }

    /// `crop_size`: {"height": h, "width": w} or a plain n (square).
    static func cropSize(_ config: ConfigFile) throws -> (height: Int, width: Int) {
        guard let value = config.values["crop_size"] else { return (224, 224) }
        if case .number = value {
            let n = try config.int("crop_size")
            return (n, n)
        }
        let members = try object(config, "crop_size", value)
        return (
            try positive(members, "height", in: "crop_size"),
            try positive(members, "width", in: "crop_size")
        )
    }

    static func object(_ config: ConfigFile, _ key: String, _ value: JSONValue) throws
        -> ConfigFile
    {
        guard case .object(let members) = value else {
            throw ModelError(
                file: config.path, key: key,
                "expected an integer or an object, found a \(value.typeName)")
        }
        return ConfigFile(
            path: config.path, values: Dictionary(members, uniquingKeysWith: { first, _ in first }))
    }

    static func positive(_ members: ConfigFile, _ key: String, in section: String) throws -> Int {
        let n = try CLIPConfig.reading(section) { try members.int(key) }
        guard n > 0 else {
            throw ModelError(
                file: members.path, key: "\(section).\(key)", "expected a positive size, found \(n)"
            )
        }
        return n
    }

    /// A number in double precision (numpy multiplies by the file's value as a double).
    static func double(_ config: ConfigFile, _ key: String, default fallback: Double) throws
        -> Double
    {
        guard let value = config.values[key] else { return fallback }
        guard case .number(let text) = value, let d = Double(text), d.isFinite else {
            throw ModelError(file: config.path, key: key, "expected a number")
        }
        return d
    }

    /// Three numbers, one per channel.
    static func triple(_ config: ConfigFile, _ key: String, default fallback: [Float]) throws
        -> [Float]
    {
        guard let value = config.values[key] else { return fallback }
        guard case .array(let items) = value, items.count == 3 else {
            throw ModelError(file: config.path, key: key, "expected 3 numbers (R, G, B)")
        }
        return try items.map { item in
            guard case .number(let text) = item, let d = Double(text), d.isFinite else {
                throw ModelError(file: config.path, key: key, "expected 3 numbers (R, G, B)")
            }
            return Float(d)
        }
    }
}
