import Formats

/// A measure of prior preservation: how much of what the original model draws for the keep
/// prompts a model under test still draws. `PixelSimilarity` (SSIM, PSNR) serves any
/// model; a model's world may add its own (the embedded world: faithfulness to the prompt
/// and FID against its real images).
public protocol PreservationMetric {
    /// The values it reports, in table order.
    var columns: [PreservationColumn] { get }

    /// One sentence for the report saying what the columns measure.
    var summary: String { get }

    /// One value per column for one model's keep images (`images[i]` for keep prompt i),
    /// given the original model's images for the same prompts and noise; `isOriginal` when
    /// `images` are the original's own. Nil where a value cannot be had.
    func measure(_ images: [PNGImage], original: [PNGImage], isOriginal: Bool) throws
        -> [Double?]
}

/// One reported value of a preservation metric.
public struct PreservationColumn: Hashable, Sendable {
    public enum Format: Hashable, Sendable {
        /// A share, shown as a percentage.
        case percent
        /// A number with this many decimals, then `unit` (may be empty).
        case decimal(Int, unit: String)
    }

    /// The key in results.json ("ssim").
    public var key: String
    /// The table heading ("SSIM").
    public var title: String
    public var format: Format

    public init(key: String, title: String, format: Format) {
        self.key = key
        self.title = title
        self.format = format
    }

    /// `value` as the report's tables show it; "–" for none.
    public func text(_ value: Double?) -> String {
        guard let value, value.isFinite else { return "–" }
        switch format {
        case .percent: return String(format: "%.1f%%", value * 100)
        case .decimal(let digits, let unit):
            return String(format: "%.\(digits)f", value) + (unit.isEmpty ? "" : " " + unit)
        }
    }
}

/// SSIM and PSNR of each keep image to the original's image for the same prompt and noise
/// (`ImageSimilarity`): a preservation metric for any model.
public struct PixelSimilarity: PreservationMetric {
    public init() {}

    public var columns: [PreservationColumn] {
        [
            PreservationColumn(key: "ssim", title: "SSIM", format: .decimal(3, unit: "")),
            PreservationColumn(key: "psnr", title: "PSNR", format: .decimal(1, unit: "dB")),
        ]
    }

    public var summary: String {
        "SSIM and PSNR to the original's image for the same prompt and noise."
    }

    public func measure(_ images: [PNGImage], original: [PNGImage], isOriginal: Bool) throws
        -> [Double?]
    {
        guard !images.isEmpty, images.count == original.count else { return [nil, nil] }
        let pairs = zip(images, original).map {
            (ImageSimilarity.ssim($0, $1), ImageSimilarity.psnr($0, $1))
        }
        let n = Double(pairs.count)
        return [pairs.map(\.0).reduce(0, +) / n, pairs.map(\.1).reduce(0, +) / n]
    }
}

/// A sentence for the report about preservation that was not measured (a metric that needs
/// something the run was not given), with no columns.
public struct PreservationNote: PreservationMetric {
    public let summary: String

    public init(_ summary: String) { self.summary = summary }

    public var columns: [PreservationColumn] { [] }

    public func measure(_ images: [PNGImage], original: [PNGImage], isOriginal: Bool) throws
        -> [Double?]
    { [] }
}
