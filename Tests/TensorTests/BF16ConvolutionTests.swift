import CKernels
import Foundation
import XCTest

@testable import Tensor

/// Convolutions under bf16 mixed precision (oneDNN) against a float64 convolution of the
/// same bf16-rounded image and weights: what is left is float32 summation, bounded by
/// k · 2⁻²³ of Σ|x||w| over each output's k = C·kh·kw terms.
final class BF16ConvolutionTests: XCTestCase {
    /// (batch, C, H, W, outC, kernel, stride, padding): 3x3 as the UNet's resnets, a
    /// downsampling stride 2, a 1x1 shortcut, odd sizes and channel counts.
    let shapes = [
        (2, 32, 16, 16, 64, 3, 1, 1), (2, 64, 18, 18, 48, 3, 2, 1), (3, 96, 16, 16, 64, 1, 1, 0),
        (1, 45, 23, 17, 70, 3, 1, 1),
    ]

    override func setUpWithError() throws {
        try XCTSkipUnless(BF16GEMM.isNative, "this CPU has no AVX512-BF16: convolutions stay fp32")
        try XCTSkipUnless(OneDNN.isAvailable, "oneDNN (libdnnl.so.2) is not installed")
    }

    override func tearDown() { BLAS.mixedPrecision = false }

    func testConvolutionIsFloat64ConvolutionOnRoundedOperands() {
        for (i, (batch, c, h, w, outC, kernel, stride, padding)) in shapes.enumerated() {
            let key = RandomKey(seed: UInt64(i))
            let x = Tensor.randn([batch, c, h, w], key: key.fold(in: 0))
            let weight = Tensor.randn([outC, c, kernel, kernel], key: key.fold(in: 1))
            let bias = Tensor.randn([outC], key: key.fold(in: 2))
            BLAS.mixedPrecision = true
            let shape = convShape(x, weight, stride, padding)
            XCTAssertTrue(BF16Convolution.applies(shape, images: batch, outChannels: outC))
            let y = conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding)
            BLAS.mixedPrecision = false
            let worst = worstError(
                y.scalars, reference(x, weight, bias, stride, padding), shape, outC)
            XCTAssertLessThanOrEqual(worst, 1, "shape \(i): error over its bound")
        }
    }

    /// dX of a frozen convolution: the float64 transposed convolution of rounded dY and W.
    func testInputGradientIsFloat64TransposedConvolutionOnRoundedOperands() {
        for (i, (batch, c, h, w, outC, kernel, stride, padding)) in shapes.enumerated() {
            let key = RandomKey(seed: UInt64(10 + i))
            let x = Tensor.randn([batch, c, h, w], key: key.fold(in: 0), requiresGrad: true)
            let weight = Tensor.randn([outC, c, kernel, kernel], key: key.fold(in: 1))
            let shape = convShape(x, weight, stride, padding)
            let dY = Tensor.randn([batch, outC, shape.Ho, shape.Wo], key: key.fold(in: 2))
            BLAS.mixedPrecision = true
            let y = conv2d(x, weight: weight, stride: stride, padding: padding)
            let dX = sum(y * dY).gradients(for: [x])[0]!
            BLAS.mixedPrecision = false
            let r = { (v: Float) in Double(BF16GEMM.rounded(v)) }
            var want = [Double](repeating: 0, count: x.count)
            var magnitude = want
            let (dy, wt) = (dY.scalars, weight.scalars)
            forEachTerm(shape, batch: batch, outC: outC) { xi, wi, yi in
                want[xi] += r(dy[yi]) * r(wt[wi])
                magnitude[xi] += abs(r(dy[yi]) * r(wt[wi]))
            }
            let k = outC * kernel * kernel
            let got = dX.scalars
            let worst = (0..<got.count).map { j in
                abs(Double(got[j]) - want[j]) / (Double(k) * 0x1p-23 * magnitude[j] + 1e-6)
            }.max()!
            XCTAssertLessThanOrEqual(worst, 1, "shape \(i): error over its bound")
        }
    }

    /// The weights oneDNN keeps in its own layout follow the tensor when it is overwritten.
    func testKeptWeightsFollowAssignedValues() {
        let key = RandomKey(seed: 99)
        let x = Tensor.randn([2, 32, 16, 16], key: key.fold(in: 0))
        let weight = Tensor.randn([64, 32, 3, 3], key: key.fold(in: 1))
        let other = Tensor.randn([64, 32, 3, 3], key: key.fold(in: 2))
        let shape = convShape(x, weight, 1, 1)
        BLAS.mixedPrecision = true
        _ = conv2d(x, weight: weight, padding: 1)
        weight.assign(other)
        let y = conv2d(x, weight: weight, padding: 1)
        BLAS.mixedPrecision = false
        let worst = worstError(y.scalars, reference(x, other, nil, 1, 1), shape, 64)
        XCTAssertLessThanOrEqual(worst, 1, "the convolution used stale weights")
    }

    func convShape(_ x: Tensor, _ weight: Tensor, _ stride: Int, _ padding: Int)
        -> duo_conv_shape
    {
        let (h, w, kernel) = (x.shape[2], x.shape[3], weight.shape[2])
        return duo_conv_shape(
            C: x.shape[1], H: h, W: w, kh: kernel, kw: kernel, stride: stride, pad: padding,
            Ho: (h + 2 * padding - kernel) / stride + 1, Wo: (w + 2 * padding - kernel) / stride + 1
        )
    }

    /// Calls `term(x index, w index, y index)` for every multiply-add of the convolution.
    func forEachTerm(
        _ s: duo_conv_shape, batch: Int, outC: Int, _ term: (Int, Int, Int) -> Void
    ) {
        for b in 0..<batch {
            for o in 0..<outC {
                for yi in 0..<s.Ho {
                    for xi in 0..<s.Wo {
                        let yIndex = ((b * outC + o) * s.Ho + yi) * s.Wo + xi
                        for c in 0..<s.C {
                            for u in 0..<s.kh {
                                let row = yi * s.stride + u - s.pad
                                guard row >= 0, row < s.H else { continue }
                                for v in 0..<s.kw {
                                    let col = xi * s.stride + v - s.pad
                                    guard col >= 0, col < s.W else { continue }
                                    term(
                                        ((b * s.C + c) * s.H + row) * s.W + col,
                                        ((o * s.C + c) * s.kh + u) * s.kw + v, yIndex)
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// (Σ rounded x · rounded w + bias, Σ |x w| + |bias|) per output, in float64.
    func reference(_ x: Tensor, _ weight: Tensor, _ bias: Tensor?, _ stride: Int, _ padding: Int)
        -> [(value: Double, magnitude: Double)]
    {
        let s = convShape(x, weight, stride, padding)
        let (batch, outC) = (x.shape[0], weight.shape[0])
        let r = { (v: Float) in Double(BF16GEMM.rounded(v)) }
        let (xs, ws) = (x.scalars.map(r), weight.scalars.map(r))
        var out = [(value: Double, magnitude: Double)](
            repeating: (0, 0), count: batch * outC * s.Ho * s.Wo)
        forEachTerm(s, batch: batch, outC: outC) { xi, wi, yi in
            out[yi].value += xs[xi] * ws[wi]
            out[yi].magnitude += abs(xs[xi] * ws[wi])
        }
        if let bias {
            let (plane, values) = (s.Ho * s.Wo, bias.scalars)
            for j in out.indices {
                let b = Double(values[(j / plane) % outC])
                out[j] = (out[j].value + b, out[j].magnitude + abs(b))
            }
        }
        return out
    }

    func worstError(
        _ got: [Float], _ want: [(value: Double, magnitude: Double)], _ s: duo_conv_shape,
        _ outC: Int
    ) -> Double {
        let k = Double(s.C * s.kh * s.kw)
        return zip(got, want).map { g, w in
            abs(Double(g) - w.value) / (k * 0x1p-23 * w.magnitude + 1e-6)
        }.max()!
    }
}
