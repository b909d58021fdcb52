import Diffusion
import Formats
import Foundation
import Tensor

/// Prior preservation as DUO measures it (its plots show 1 − LPIPS): the mean LPIPS
/// distance (VGG, version 0.1) of each keep image to the original's image for the same
/// prompt and noise, from lpips' weights in a safetensors file the user gives (`LPIPS`).
public struct LPIPSPreservation: PreservationMetric {
    let model: LPIPS
    let path: String

    /// Loads the weights at `path`, lpips' `LPIPS(net='vgg').state_dict()` as safetensors.
    public init(weights path: String) throws {
        model = try LPIPS(path: path)
        self.path = path
    }

    public var columns: [PreservationColumn] {
        [
            PreservationColumn(
                key: "lpips", title: "LPIPS to original", format: .decimal(3, unit: ""))
        ]
    }

    public var summary: String {
        let name = (path as NSString).lastPathComponent
        return "LPIPS to original (VGG, v0.1, \(name)): the perceptual distance of each keep "
            + "image to the original's image for the same prompt and noise, averaged (0 for "
            + "the original itself; DUO plots 1 − LPIPS)."
    }

    public func measure(_ images: [PNGImage], original: [PNGImage], isOriginal: Bool) throws
        -> [Double?]
    {
        guard !images.isEmpty, images.count == original.count,
            zip(images, original).allSatisfy({ Self.comparable($0.0, $0.1) })
        else { return [nil] }
        // Both sides would run the same ops on the same pixels: the distance is exactly 0.
        if isOriginal { return [0] }
        let total = zip(images, original).reduce(0.0) { total, pair in
            // x / 127.5 − 1 is lpips' 2x − 1 of x / 255 (its `normalize=True`), up to rounding.
            let (a, b) = (ImageConversion.modelInput(pair.0), ImageConversion.modelInput(pair.1))
            return total + Double(model.distance(a, b)[0])
        }
        return [total / Double(images.count)]
    }

    /// Whether LPIPS is defined for the pair: the same size, large enough for VGG's pools.
    static func comparable(_ a: PNGImage, _ b: PNGImage) -> Bool {
        a.width == b.width && a.height == b.height
            && min(a.width, a.height) >= VGG16Features.minimumSide
    }
}
