import Foundation
import XCTest

@testable import Tensor

/// Linear layers under bf16 mixed precision (oneDNN's matmul) against float64 products of
/// the same bf16-rounded operands: what is left is float32 summation, bounded by
/// k · 2⁻²³ of Σ|x||w| over each output's k terms.
final class BF16LinearTests: XCTestCase {
    /// (rows, in, out): a projection, a wide feed-forward, odd sizes.
    let shapes = [(512, 320, 320), (300, 64, 1280), (777, 129, 77)]

    override func setUpWithError() throws {
        try XCTSkipUnless(BF16GEMM.isNative, "this CPU has no AVX512-BF16: linear stays fp32")
        try XCTSkipUnless(OneDNN.isAvailable, "oneDNN (libdnnl.so.2) is not installed")
    }

    override func tearDown() { BLAS.mixedPrecision = false }

    func testLinearAndItsInputGradientAreFloat64ProductsOfRoundedOperands() {
        for (i, (rows, inFeatures, outFeatures)) in shapes.enumerated() {
            let key = RandomKey(seed: UInt64(i))
            let x = Tensor.randn([rows, inFeatures], key: key.fold(in: 0), requiresGrad: true)
            let weight = Tensor.randn([outFeatures, inFeatures], key: key.fold(in: 1))
            let bias = Tensor.randn([outFeatures], key: key.fold(in: 2))
            let dY = Tensor.randn([rows, outFeatures], key: key.fold(in: 3))
            BLAS.mixedPrecision = true
            XCTAssertTrue(
                BF16Linear.applies(rows: rows, outFeatures: outFeatures, inFeatures: inFeatures))
            let y = linear(x, weight: weight, bias: bias)
            let dX = sum(y * dY).gradients(for: [x])[0]!
            BLAS.mixedPrecision = false
            let (xs, ws, bs, dys) = (x.scalars, weight.scalars, bias.scalars, dY.scalars)
            // y[r, o] = Σ_i x[r, i] w[o, i] + b[o]
            let forward = worstError(
                y.scalars, rows: rows, columns: outFeatures, depth: inFeatures,
                a: { r, i in xs[r * inFeatures + i] }, b: { i, o in ws[o * inFeatures + i] },
                offset: { _, o in bs[o] })
            XCTAssertLessThanOrEqual(forward, 1, "shape \(i): y over its bound")
            // dX[r, i] = Σ_o dY[r, o] w[o, i]
            let backward = worstError(
                dX.scalars, rows: rows, columns: inFeatures, depth: outFeatures,
                a: { r, o in dys[r * outFeatures + o] }, b: { o, i in ws[o * inFeatures + i] },
                offset: { _, _ in 0 })
            XCTAssertLessThanOrEqual(backward, 1, "shape \(i): dX over its bound")
        }
    }

    /// The weights oneDNN keeps in its own layout follow the tensor when it is overwritten.
    func testKeptWeightsFollowAssignedValues() {
        let key = RandomKey(seed: 7)
        let x = Tensor.randn([512, 320], key: key.fold(in: 0))
        let weight = Tensor.randn([320, 320], key: key.fold(in: 1))
        let other = Tensor.randn([320, 320], key: key.fold(in: 2))
        BLAS.mixedPrecision = true
        _ = linear(x, weight: weight)
        weight.assign(other)
        let y = linear(x, weight: weight)
        BLAS.mixedPrecision = false
        let (xs, ws) = (x.scalars, other.scalars)
        let worst = worstError(
            y.scalars, rows: 512, columns: 320, depth: 320, a: { r, i in xs[r * 320 + i] },
            b: { i, o in ws[o * 320 + i] }, offset: { _, _ in 0 })
        XCTAssertLessThanOrEqual(worst, 1, "the product used stale weights")
    }

    /// The largest |got − Σ_k r(a(i, k)) r(b(k, j)) − offset| over its bound.
    func worstError(
        _ got: [Float], rows: Int, columns: Int, depth: Int, a: (Int, Int) -> Float,
        b: (Int, Int) -> Float, offset: (Int, Int) -> Float
    ) -> Double {
        let r = { (v: Float) in Double(BF16GEMM.rounded(v)) }
        var worst = 0.0
        for i in 0..<rows {
            for j in 0..<columns {
                var (want, magnitude) = (Double(offset(i, j)), abs(Double(offset(i, j))))
                for k in 0..<depth {
                    let term = r(a(i, k)) * r(b(k, j))
                    want += term
                    magnitude += abs(term)
                }
                let bound = Double(depth) * 0x1p-23 * magnitude + 1e-6
                worst = max(worst, abs(Double(got[i * columns + j]) - want) / bound)
            }
        }
        return worst
    }
}
