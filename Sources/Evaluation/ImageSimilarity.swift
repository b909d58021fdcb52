import Formats
import Foundation

/// Per-seed similarity of an unlearned model's image to the original's for the same
/// prompt and noise: PSNR and SSIM (Wang et al. 2004) on 8-bit RGB, usable for any model
/// (no LPIPS weights can be had here; for the world, `WorldDetector` features serve as the
/// perceptual distance).
public enum ImageSimilarity {
    /// 10 log10(255² / MSE) over all channels; 99 for identical images.
    public static func psnr(_ a: PNGImage, _ b: PNGImage) -> Double {
        let (x, y) = (a.rgb().pixels, b.rgb().pixels)
        precondition(x.count == y.count, "PSNR of images of different sizes")
        let mse =
            zip(x, y).reduce(0.0) { $0 + pow(Double($1.0) - Double($1.1), 2) } / Double(x.count)
        return mse == 0 ? 99 : 10 * log10(255 * 255 / mse)
    }

    /// Mean SSIM over 7x7 windows (stride 1) of the luma channel, with the usual constants
    /// (K1 0.01, K2 0.03, L 255) and uniform windows, as scikit-image's default.
    public static func ssim(_ a: PNGImage, _ b: PNGImage) -> Double {
        let (x, y) = (luma(a), luma(b))
        let (w, h, r) = (a.width, a.height, 3)
        let c1: Double = 6.5025, c2: Double = 58.5225  // (0.01 · 255)², (0.03 · 255)²
        guard w > 2 * r, h > 2 * r else { return psnr(a, b) >= 99 ? 1 : 0 }
        var total = 0.0, windows = 0
        for cy in r..<(h - r) {
            for cx in r..<(w - r) {
                var sx = 0.0, sy = 0.0, sxx = 0.0, syy = 0.0, sxy = 0.0
                for dy in -r...r {
                    for dx in -r...r {
                        let (p, q) = (x[(cy + dy) * w + cx + dx], y[(cy + dy) * w + cx + dx])
                        sx += p; sy += q; sxx += p * p; syy += q * q; sxy += p * q
                    }
                }
                let n = Double((2 * r + 1) * (2 * r + 1))
                let (mx, my) = (sx / n, sy / n)
                // Sample (co)variances, as scikit-image uses by default.
                let vx = (sxx - n * mx * mx) / (n - 1), vy = (syy - n * my * my) / (n - 1)
                let cov = (sxy - n * mx * my) / (n - 1)
                total +=
                    ((2 * mx * my + c1) * (2 * cov + c2))
                    / ((mx * mx + my * my + c1) * (vx + vy + c2))
                windows += 1
            }
        }
        return total / Double(windows)
    }

    /// ITU-R BT.601 luma of each pixel.
    static func luma(_ image: PNGImage) -> [Double] {
        let p = image.rgb().pixels
        return (0..<(image.width * image.height)).map { i -> Double in
            let red = 0.299 * Double(p[3 * i])
            let green = 0.587 * Double(p[3 * i + 1])
            let blue = 0.114 * Double(p[3 * i + 2])
            return red + green + blue
        }
    }
}
