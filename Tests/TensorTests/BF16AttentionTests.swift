import Foundation
import Tensor
import XCTest

/// Attention in bf16 mixed precision against a float64 attention on the same bf16-rounded
/// Q, K and V: what is left is the rounding of the probabilities to bf16 before P V (half a
/// bf16 unit, 2^-8 of each term) and float32 sums.
final class BF16AttentionTests: XCTestCase {
    func testMixedPrecisionAttentionIsFloat64AttentionOnRoundedOperands() throws {
        try XCTSkipUnless(BF16GEMM.isNative, "this CPU has no AVX512-BF16: attention stays fp32")
        // (batch, heads, query tokens, key tokens, head size): a partial block of 32
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

    /// The backward pass against a float64 one that rounds each GEMM's operands to bf16 as
    /// the kernel does: what is left is an element of P or dS landing on the neighbouring
    /// bf16 value (one unit, 2^-7 of it) and float32 sums.
    func testMixedPrecisionGradientsAreFloat64GradientsOnRoundedOperands() throws {
        try XCTSkipUnless(BF16GEMM.isNative, "this CPU has no AVX512-BF16: attention stays fp32")
        // Two blocks of 32 queries (dK and dV summed over blocks), few keys, an odd d.
        let shapes = [(1, 2, 50, 37, 8), (2, 1, 13, 77, 40), (1, 1, 20, 5, 33)]
        for (i, (batch, heads, tq, tk, d)) in shapes.enumerated() {
            let key = RandomKey(seed: UInt64(10 + i))
            let q = Tensor.randn([batch, tq, heads * d], key: key.fold(in: 0), requiresGrad: true)
            let k = Tensor.randn([batch, tk, heads * d], key: key.fold(in: 1), requiresGrad: true)
            let v = Tensor.randn([batch, tk, heads * d], key: key.fold(in: 2), requiresGrad: true)
            let dOut = Tensor.randn([batch, tq, heads * d], key: key.fold(in: 3))
            BLAS.mixedPrecision = true
            let out = scaledDotProductAttention(query: q, key: k, value: v, heads: heads)
            let grads = out.gradients(for: [q, k, v], seed: dOut).map { $0!.scalars }
            BLAS.mixedPrecision = false
            let worst = worstGradientError(
                grads, out.scalars, q.scalars, k.scalars, v.scalars, dOut.scalars,
                (batch, heads, tq, tk, d))
            XCTAssertLessThanOrEqual(worst, 1, "shape \(i): error over its bound")
        }
    }

    /// The largest |gradient - reference| / bound over dQ, dK and dV.
    func worstGradientError(
        _ grads: [[Float]], _ out: [Float], _ q: [Float], _ k: [Float], _ v: [Float],
        _ dOut: [Float], _ shape: (Int, Int, Int, Int, Int)
    ) -> Double {
        let (batch, heads, tq, tk, d) = shape
        let width = heads * d
        let scale = 1 / Double(d).squareRoot()
        func r(_ x: Double) -> Double { Double(BF16GEMM.rounded(Float(x))) }
        var want = [[Double]](repeating: [], count: 3)
        var bound = [[Double]](repeating: [], count: 3)
        for (n, count) in [tq, tk, tk].enumerated() {
            want[n] = Array(repeating: 0, count: batch * count * width)
            bound[n] = Array(repeating: 1e-6, count: batch * count * width)
        }
        for b in 0..<batch {
            for h in 0..<heads {
                func at(_ t: Int, _ rows: Int, _ c: Int) -> Int {
                    (b * rows + t) * width + h * d + c
                }
                for i in 0..<tq {
                    var p = (0..<tk).map { j in
                        scale
                            * (0..<d).reduce(0.0) {
                                $0 + r(Double(q[at(i, tq, $1)])) * r(Double(k[at(j, tk, $1)]))
                            }
                    }
                    let top = p.max()!
                    p = p.map { Foundation.exp($0 - top) }
                    let total = p.reduce(0, +)
                    p = p.map { $0 / total }
                    let row = (0..<d).reduce(0.0) {
                        $0 + Double(dOut[at(i, tq, $1)]) * Double(out[at(i, tq, $1)])
                    }
                    for j in 0..<tk {
                        let dp = (0..<d).reduce(0.0) {
                            $0 + r(Double(dOut[at(i, tq, $1)])) * r(Double(v[at(j, tk, $1)]))
                        }
                        let ds = scale * p[j] * (dp - row)
                        // dS's own float32 error where dP and the row sum nearly cancel.
                        let dsSlack = 0x1p-20 * scale * p[j] * (abs(dp) + abs(row))
                        for c in 0..<d {
                            let (qi, kj, vj) = (at(i, tq, c), at(j, tk, c), at(j, tk, c))
                            let terms = [
                                (0, qi, r(ds) * r(Double(k[kj])), abs(ds) + dsSlack, k[kj]),
                                (1, kj, r(ds) * r(Double(q[qi])), abs(ds) + dsSlack, q[qi]),
                                (2, vj, r(p[j]) * r(Double(dOut[qi])), p[j], dOut[qi]),
                            ]
                            for (n, index, value, magnitude, other) in terms {
                                want[n][index] += value
                                bound[n][index] += 0x1p-7 * 1.01 * magnitude * abs(Double(other))
                            }
                        }
                    }
                }
            }
        }
        var worst = 0.0
        for n in 0..<3 {
            for (index, got) in grads[n].enumerated() {
                worst = max(worst, abs(Double(got) - want[n][index]) / bound[n][index])
            }
        }
        return worst
    }
}
