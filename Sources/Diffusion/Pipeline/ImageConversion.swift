import Formats
import Tensor

/// Between image tensors and PNG pixels.
public enum ImageConversion {
    /// images [B, 3, H, W] with values in [0, 1] -> B RGB images, rounding v * 255 as
    /// diffusers' numpy_to_pil does. A NaN or infinite value is an error, not a pixel:
    /// diffusers writes it as black, which hides a broken model or adapter.
    public static func pngImages(_ images: Tensor) throws -> [PNGImage] {
        precondition(
            images.rank == 4 && images.shape[1] == 3, "expected [B, 3, H, W], got \(images.shape)")
        let (batch, h, w) = (images.shape[0], images.shape[2], images.shape[3])
        let values = images.scalars
        if let bad = values.firstIndex(where: { !$0.isFinite }) {
            throw SamplingError(
                "image \(bad / (3 * h * w) + 1) of \(batch) holds a non-finite value (\(values[bad])): "
                    + "the model, adapter, scale or initial latents produce NaN or infinity")
        }
        return (0..<batch).map { b in
            var pixels = [UInt8](repeating: 0, count: h * w * 3)
            for c in 0..<3 {
                for i in 0..<(h * w) {
                    let v = values[(b * 3 + c) * h * w + i]
                    pixels[i * 3 + c] = UInt8((min(max(v, 0), 1) * 255).rounded())
                }
            }
            return PNGImage(width: w, height: h, channels: 3, pixels: pixels)
        }
    }

    /// An image (converted to RGB over white if it has alpha) -> [1, 3, H, W] in [-1, 1],
    /// the model's input range.
    public static func modelInput(_ image: PNGImage) -> Tensor {
        let rgb = image.rgb()
        let (h, w) = (rgb.height, rgb.width)
        var values = [Float](repeating: 0, count: 3 * h * w)
        for i in 0..<(h * w) {
            for c in 0..<3 { values[c * h * w + i] = Float(rgb.pixels[i * 3 + c]) / 127.5 - 1 }
        }
        return Tensor(values, shape: [1, 3, h, w])
    }
}
