import Tensor

/// 2-D convolution, as torch.nn.Conv2d. weight: [out, in, k, k], bias: [out].
public final class Conv2d: Layer {
    public let weight: Tensor
    public let bias: Tensor?
    public let stride: Int
    public let padding: Int
    /// A low-rank adapter, merged into the weight when present and enabled.
    public var lora: LoRA?

    /// PyTorch's default initialization: U(-1/sqrt(fanIn), 1/sqrt(fanIn)), fanIn = in*k*k
    /// (zeros with a nil key, for loading).
    public init(
        _ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
        bias: Bool = true, key: RandomKey?
    ) {
        let bound = 1 / Float(inChannels * kernel * kernel).squareRoot()
        let keys = key.split(2)
        weight = initialUniform(
            [outChannels, inChannels, kernel, kernel], bound: bound, key: keys[0])
        self.bias = bias ? initialUniform([outChannels], bound: bound, key: keys[1]) : nil
        self.stride = stride
        self.padding = padding
    }

    public var inChannels: Int { weight.shape[1] }
    public var outChannels: Int { weight.shape[0] }

    public var namedParameters: [(String, Tensor)] {
        [("weight", weight)] + (bias.map { [("bias", $0)] } ?? [])
    }

    /// x: [B, in, H, W] -> [B, out, H', W']
    public func callAsFunction(_ x: Tensor) -> Tensor {
        guard let lora, lora.isEnabled else {
            return conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding)
        }
        return conv2d(
            x, weight: lora.merged(with: weight), bias: bias, stride: stride, padding: padding)
    }

    public var kernel: Int { weight.shape[2] }
}
