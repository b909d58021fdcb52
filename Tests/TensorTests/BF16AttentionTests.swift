import Foundation
import Tensor
import XCTest

/// Attention in bf16 mixed precision against a float64 attention on the same bf16-rounded
/// Q, K and V: what is left is the rounding of the probabilities to bf16 before P V (half a
/// bf16 unit, 2^-8 of each term) and float32 sums.
final class BF16AttentionTests: XCTestCase {
    func testMixedPrecisionAttentionIsFloat64AttentionOnRoundedOperands() throws {
        try XCTSkipUnless(BF16GEMM.isNative, "this CPU has no AVX512-BF16: attention stays fp32")
        // (batch, heads, query tokens, key tokens, head size): a partial block of 48
        // queries, few keys (a missing one would show), cross-attention's 77, an odd d.
        let shapes = [(2, 3, 50, 77, 40), (1, 2, 13, 5, 8), (1, 1, 100, 300, 33)]
        for (i, (batch, heads, tq, tk, d)) in shapes.enumerated() {
            let key = RandomKey(seed: UInt64(i))
            let q = Tensor.randn([batch, tq, heads * d], key: key.fold(in: 0))
            let k = Tensor.randn([batch, tk, heads * d], key: key.fold(in: 1))
            let v = Tensor.randn([batch, tk, heads * d], key: key.fold(in: 2))
            let fp32 = scaledDotProductAttention(query: q, key: k, value: v, heads: heads)
            BLAS.mixedPrecision = true
            let mixed = scaledDotProductAttention(query: q, key: k, value: v, heads: heads)
            BLAS.mixedPrecision = false
            XCTAssertNotEqual(mixed.scalars, fp32.scalars, "the bf16 path ran")
            let worst = worstError(
                mixed.scalars, q.scalars, k.scalars, v.scalars, batch, heads, tq, tk, d)
            XCTAssertLessThanOrEqual(worst, 1, "shape \(i): error over its bound")
        }
    }

    /// The largest |O - O_ref| / bound over all outputs.
    func worstError(
        _ out: [Float], _ q: [Float], _ k: [Float], _ v: [Float], _ batch: Int, _ heads: Int,
        _ tq: Int, _ tk: Int, _ d: Int
    ) -> Double {
        let width = heads * d
        let scale = 1 / Double(d).squareRoot()
        func r(_ x: Float) -> Double { Double(BF16GEMM.rounded(x)) }
        var worst = 0.0
        for b in 0..<batch {
            for h in 0..<heads {
                for i in 0..<tq {
                    let qi = (b * tq + i) * width + h * d
                    var scores = (0..<tk).map { j -> Double in
                        let kj = (b * tk + j) * width + h * d
                        return scale * (0..<d).reduce(0.0) { $0 + r(q[qi + $1]) * r(k[kj + $1]) }
                    }
                    let top = scores.max()!
                    scores = scores.map { Foundation.exp($0 - top) }
                    let sum = scores.reduce(0, +)
                    let p = scores.map { $0 / sum }
                    for c in 0..<d {
                        var want = 0.0
                        var magnitude = 0.0
                        for j in 0..<tk {
                            let vj = r(v[(b * tk + j) * width + h * d + c])
                            want += p[j] * vj
                            magnitude += p[j] * abs(vj)
                        }
                        let bound = (0x1p-8 * 1.01 + 1e-5) * magnitude + 1e-7
                        worst = max(worst, abs(Double(out[qi + c]) - want) / bound)
                    }
                }
            }
        }
        return worst
    }
}
