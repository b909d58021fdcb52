import Diffusion
import Formats
import Tensor

/// LPIPS, the learned perceptual image patch similarity of Zhang et al. 2018 ("The
/// Unreasonable Effectiveness of Deep Features as a Perceptual Metric"), version 0.1 on the
/// VGG16 trunk, as the lpips package (0.1.4, `LPIPS(net='vgg')`) computes it: images scaled
/// by its ScalingLayer, VGG's five ReLU outputs unit-normalized over channels per pixel,
/// their squared differences weighted per channel by a learned 1x1 head (no bias), averaged
/// over the pixels, and summed over the five layers. 0 for identical images.
///
/// Keys are lpips' own state dict's (`net.slice1.0.weight`, ..., `lin0.model.1.weight`), so
/// `LPIPS(net='vgg').state_dict()` saved as safetensors loads as it is; keys this model
/// does not read (`scaling_layer.*`, the `lins.*` aliases of the heads) are ignored.
/// Forward only: the unit normalization is computed outside the autodiff graph.
public final class LPIPS: Layer {
    /// The VGG16 trunk (`net.`).
    public let features: VGG16Features
    /// Per VGG output, the 1x1 convolution [1, C, 1, 1] weighting each channel's squared
    /// difference (`linN.model.1`, after the dropout lpips trains with).
    public let heads: [Conv2d]

    /// lpips' ScalingLayer, (x - shift) / scale: ImageNet's channel means and deviations
    /// carried to inputs in [-1, 1], the range the heads were calibrated on.
    static let shift = Tensor([-0.030, -0.088, -0.188], shape: [1, 3, 1, 1])
    static let scale = Tensor([0.458, 0.448, 0.450], shape: [1, 3, 1, 1])
    /// lpips' `normalize_tensor` adds it to the norm, so a pixel whose features are all 0
    /// (every ReLU off) normalizes to 0 rather than NaN.
    static let epsilon: Float = 1e-10

    /// Loads the safetensors file at `path`; a missing or misshapen tensor fails naming the
    /// file and the key.
    public convenience init(path: String) throws {
        try self.init(file: SafeTensorsReader(path: path))
    }

    public init(file: SafeTensorsReader) throws {
        let features = try VGG16Features(file: file, prefix: "net.")
        self.features = features
        heads = try features.outputChannels.enumerated().map { layer, channels in
            let head = Conv2d(channels, 1, kernel: 1, bias: false, key: nil)
            try WeightLoading.load(head, from: file, prefix: "lin\(layer).model.1.")
            return head
        }
    }

    public var namedParameters: [(String, Tensor)] {
        scoped("net", features)
            + heads.enumerated().flatMap { scoped("lin\($0.offset).model.1", $0.element) }
    }

    /// a, b: [B, 3, H, W] in [-1, 1] -> the distance of each pair (a_i, b_i).
    public func distance(_ a: Tensor, _ b: Tensor) -> [Float] {
        let layers = layerDistances(a, b)
        return (0..<a.shape[0]).map { i in layers.reduce(0) { $0 + $1[i] } }
    }

    /// a, b: [B, 3, H, W] in [-1, 1] -> per VGG output, each pair's term of the distance:
    /// [5][B].
    public func layerDistances(_ a: Tensor, _ b: Tensor) -> [[Float]] {
        precondition(a.shape == b.shape, "LPIPS of images \(a.shape) and \(b.shape)")
        return GradMode.withNoGrad {
            let (outputsA, outputsB) = (features(scaled(a)), features(scaled(b)))
            return zip(heads, zip(outputsA, outputsB)).map { head, outputs in
                let difference = unitNormalized(outputs.0) - unitNormalized(outputs.1)
                let weighted = conv2d(difference * difference, weight: head.weight)
                return mean(weighted, axes: [2, 3]).scalars
            }
        }
    }

    /// lpips' ScalingLayer.
    func scaled(_ x: Tensor) -> Tensor { (x - Self.shift) / Self.scale }

    /// x: [B, C, H, W] -> x / (|x| + ε), |x| the norm over channels at each pixel.
    func unitNormalized(_ x: Tensor) -> Tensor {
        let squares = sum(x * x, axes: [1], keepDims: true)
        let norms = Tensor(
            squares.scalars.map { $0.squareRoot() + Self.epsilon }, shape: squares.shape)
        return x / norms
    }
}
