@testable import Tensor
import TestSupport
import XCTest

/// conv2d's forward pass, dX and dW against float64 sums of their definitions, on shapes
/// whose work buffers take padded row strides (`BLAS.paddedRowStride`): Winograd's tiles
/// (128 or more per GEMM row) and im2col's columns (256 pixels).
final class ConvolutionGradientTests: XCTestCase {
    /// y, dX and dW of a 3x3 stride-1 padding-1 convolution in float64, for dY.
    func directSums(x: Tensor, weight: Tensor, dY: Tensor) -> (y: [Float], dX: [Float], dW: [Float])
    {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let o = weight.shape[0]
        let (xv, wv, dv) = (x.scalars, weight.scalars, dY.scalars)
        var y = [Double](repeating: 0, count: n * o * h * w)
        var dX = [Double](repeating: 0, count: x.count)
        var dW = [Double](repeating: 0, count: weight.count)
        for image in 0..<n {
            for oc in 0..<o {
                for ic in 0..<c {
                    for ky in 0..<3 {
                        for kx in 0..<3 {
                            let wi = ((oc * c + ic) * 3 + ky) * 3 + kx
                            for oy in 0..<h {
                                let iy = oy - 1 + ky
                                guard (0..<h).contains(iy) else { continue }
                                for ox in 0..<w {
                                    let ix = ox - 1 + kx
                                    guard (0..<w).contains(ix) else { continue }
                                    let xi = ((image * c + ic) * h + iy) * w + ix
                                    let yi = ((image * o + oc) * h + oy) * w + ox
                                    y[yi] += Double(xv[xi]) * Double(wv[wi])
                                    dX[xi] += Double(dv[yi]) * Double(wv[wi])
                                    dW[wi] += Double(dv[yi]) * Double(xv[xi])
                                }
                            }
                        }
                    }
                }
            }
        }
        return (y.map(Float.init), dX.map(Float.init), dW.map(Float.init))
    }

    func check(images: Int, channels: Int, outChannels: Int, side: Int, _ name: String) {
        let x = randomTensor([images, channels, side, side], seed: 60)
        let weight = randomTensor([outChannels, channels, 3, 3], seed: 61, scale: 0.3)
        let dY = randomTensor([images, outChannels, side, side], seed: 62)
        let expected = directSums(x: x, weight: weight, dY: dY)
        x.requiresGrad = true
        weight.requiresGrad = true
        let y = conv2d(x, weight: weight, padding: 1)
        y.backward(dY)
        // Sums of 9 * channels (y, dX) or images * pixels * 9 terms (dW) of unit size:
        // float32 rounding stays far below these bounds; a misplaced row errs by O(1).
        assertClose(y, expected.y, rtol: 1e-4, atol: 1e-4, "\(name) y")
        assertClose(x.grad!, expected.dX, rtol: 1e-4, atol: 1e-4, "\(name) dX")
        assertClose(weight.grad!, expected.dW, rtol: 1e-4, atol: 1e-3, "\(name) dW")
    }

    func testWinogradPathOnPaddedTileRowsMatchesDirectSums() {
        // 16 channels at 16x16 with F(2x2, 3x3) tiles: 64 tiles an image, two or four images
        // in a GEMM row (128 or 256 tiles, padded), and dW over all four (1024).
        defer { Winograd.largeTiles = true }
        Winograd.largeTiles = false
        check(images: 4, channels: 16, outChannels: 16, side: 16, "winograd")
    }

    func testIm2colPathOnPaddedColumnRowsMatchesDirectSums() {
        // 8 channels (too few for Winograd) at 16x16: 256 pixels a column row, padded.
        check(images: 2, channels: 8, outChannels: 4, side: 16, "im2col")
    }
}
