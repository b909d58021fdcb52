import Diffusion
import Formats
import Tensor

/// The convolutional trunk of VGG16 (Simonyan & Zisserman 2015, configuration D) as LPIPS
/// reads it: five slices of 3x3 convolutions (padding 1) each followed by a ReLU, a 2x2
/// max-pool opening every slice but the first, and each slice's last ReLU output kept
/// (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3).
///
/// Keys are lpips' (`slice1.0.weight`, `slice2.5.bias`, ...): its slices keep torchvision's
/// `features.N` indices. The channel widths are read from the weights (VGG16's are 64, 128,
/// 256, 512, 512), so that a narrow network of the same structure can stand in for VGG16 in
/// tests; the structure itself is fixed.
public final class VGG16Features: Layer {
    /// torchvision's `features` index of each convolution, per slice; the indices between
    /// them are the ReLUs and the max-pools, which have no parameters.
    static let convolutionIndices = [[0, 2], [5, 7], [10, 12, 14], [17, 19, 21], [24, 26, 28]]

    /// Each slice's convolutions, in order.
    public let slices: [[Conv2d]]

    /// Reads every convolution from `file` under `prefix` (`net.` in an LPIPS state dict),
    /// its output width from its weight's shape; the input width is the previous one's
    /// output (3, RGB, for the first). A missing or misshapen tensor fails naming the key.
    public init(file: SafeTensorsReader, prefix: String) throws {
        var inChannels = 3
        var slices: [[Conv2d]] = []
        for (s, indices) in Self.convolutionIndices.enumerated() {
            var slice: [Conv2d] = []
            for index in indices {
                let scope = "\(prefix)slice\(s + 1).\(index)."
                let outChannels = try Self.outputWidth(
                    file, key: scope + "weight", inChannels: inChannels)
                let conv = Conv2d(inChannels, outChannels, kernel: 3, padding: 1, key: nil)
                try WeightLoading.load(conv, from: file, prefix: scope)
                slice.append(conv)
                inChannels = outChannels
            }
            slices.append(slice)
        }
        self.slices = slices
    }

    /// The output width of the 3x3 convolution weight `key`, [out, inChannels, 3, 3].
    static func outputWidth(_ file: SafeTensorsReader, key: String, inChannels: Int) throws -> Int {
        let expected = "[out, \(inChannels), 3, 3]"
        guard file.contains(key) else {
            throw ModelError(
                file: file.path, key: key, "missing (expected a VGG16 convolution of \(expected))")
        }
        let shape = try file.info(key).shape
        guard shape.count == 4, shape[0] > 0, shape[1] == inChannels, shape[2] == 3,
            shape[3] == 3
        else {
            throw ModelError(
                file: file.path, key: key, "expected shape \(expected), found \(shape)")
        }
        return shape[0]
    }

    public var namedParameters: [(String, Tensor)] {
        zip(slices, Self.convolutionIndices).enumerated().flatMap { s, slice in
            zip(slice.0, slice.1).flatMap { conv, index in scoped("slice\(s + 1).\(index)", conv) }
        }
    }

    /// The widths of the five outputs.
    public var outputChannels: [Int] { slices.map { $0.last!.outChannels } }

    /// The smallest side the four max-pools leave at least one pixel of.
    public static let minimumSide = 16

    /// x: [B, 3, H, W] -> the five slices' outputs, slice s's [B, C_s, H / 2^s, W / 2^s]
    /// (each halving rounded down).
    public func callAsFunction(_ x: Tensor) -> [Tensor] {
        precondition(
            x.rank == 4 && x.shape[1] == 3 && x.shape[2] >= Self.minimumSide
                && x.shape[3] >= Self.minimumSide,
            "VGG16Features expects [B, 3, H >= 16, W >= 16], got \(x.shape)")
        var x = x
        var outputs: [Tensor] = []
        for (s, slice) in slices.enumerated() {
            if s > 0 { x = maxPool2x2(x) }
            for conv in slice { x = relu(conv(x)) }
            outputs.append(x)
        }
        return outputs
    }

    /// max(x, 0): a clamp, which the Tensor module has; VGG is its only user here.
    private func relu(_ x: Tensor) -> Tensor { clamp(x, min: 0, max: .infinity) }
}
