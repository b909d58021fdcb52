import Tensor

/// Halves H and W with a strided 3x3 conv (diffusers' Downsample2D, `downsamplers.0`).
/// The VAE encoder pads only right and bottom (padding 0 + asymmetric pad), the UNet pads
/// all sides by 1.
public final class Downsample2D: Layer {
    public let conv: Conv2d
    public let asymmetricPadding: Bool

    public init(channels: Int, asymmetricPadding: Bool = false, key: RandomKey?) {
        self.asymmetricPadding = asymmetricPadding
        conv = Conv2d(
            channels, channels, kernel: 3, stride: 2, padding: asymmetricPadding ? 0 : 1,
            key: key)
    }

    public var namedParameters: [(String, Tensor)] { scoped("conv", conv) }

    /// x: [B, C, H, W] -> [B, C, H/2, W/2]
    public func callAsFunction(_ x: Tensor) -> Tensor {
        conv(asymmetricPadding ? pad2d(x, right: 1, bottom: 1) : x)
    }
}

/// Doubles H and W: nearest-neighbour upsampling, then a 3x3 conv (diffusers' Upsample2D,
/// `upsamplers.0`).
public final class Upsample2D: Layer {
    public let conv: Conv2d

    public init(channels: Int, key: RandomKey?) {
        conv = Conv2d(channels, channels, kernel: 3, padding: 1, key: key)
    }

    public var namedParameters: [(String, Tensor)] { scoped("conv", conv) }

    /// x: [B, C, H, W] -> [B, C, 2H, 2W]
    public func callAsFunction(_ x: Tensor) -> Tensor { conv(upsampleNearest2x(x)) }
}
