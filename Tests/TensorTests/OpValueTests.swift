import Foundation
import Tensor
import TestSupport
import XCTest

/// Forward values of the ops against direct reference loops written in Double here,
/// independently of the kernels (im2col, fused attention, vectorized exp/erf).
final class OpValueTests: XCTestCase {
    func testActivationsMatchLibmFormulas() {
        let x = randomTensor([4096], seed: 1, scale: 4).scalars + [-30, -12, 0, 12, 30]
        let input = Tensor(x, shape: [x.count])
        func reference(_ f: (Double) -> Double) -> [Float] { x.map { Float(f(Double($0))) } }
        let sigmoid = { (v: Double) in 1 / (1 + Foundation.exp(-v)) }
        assertClose(silu(input), reference { $0 * sigmoid($0) }, rtol: 2e-6, atol: 1e-6, "silu")
        assertClose(
            gelu(input), reference { 0.5 * $0 * (1 + erf($0 / 2.0.squareRoot())) },
            rtol: 1e-6, atol: 1e-6, "gelu")
        assertClose(
            gelu(input, approximate: true),
            reference {
                0.5 * $0 * (1 + tanh((2 / Double.pi).squareRoot() * ($0 + 0.044715 * $0 * $0 * $0)))
            },
            rtol: 2e-6, atol: 1e-6, "gelu tanh")
        // GEGLU on rows [h | g]: the second half of each row gated through GELU.
        let rows = Tensor(Array(x.prefix(4096)), shape: [2, 4, 512])
        let geglued = x.prefix(4096).enumerated().compactMap { i, h -> Float? in
            guard i % 512 < 256 else { return nil }
            let g = Double(x[i + 256])
            return Float(Double(h) * 0.5 * g * (1 + erf(g / 2.0.squareRoot())))
        }
        // atol: h (up to ~8 here) scales GELU's float error where 1 + erf(g) cancels.
        assertClose(geglu(rows), geglued, rtol: 2e-6, atol: 1e-5, "geglu")
        assertClose(
            quickGELU(input), reference { $0 * sigmoid(1.702 * $0) }, rtol: 2e-6, atol: 1e-6,
            "quickGELU")
        assertClose(
            softplus(input), reference { log1p(Foundation.exp(-abs($0))) + max($0, 0) },
            rtol: 2e-6, atol: 1e-7, "softplus")
        assertClose(
            logSigmoid(input), reference { -(log1p(Foundation.exp(-abs($0))) + max(-$0, 0)) },
            rtol: 2e-6, atol: 1e-7, "logSigmoid")
        let moderate = Tensor(x.map { max(-80, min(80, $0)) }, shape: [x.count])
        assertClose(
            exp(moderate), moderate.scalars.map { Float(Foundation.exp(Double($0))) },
            rtol: 3e-7, atol: 0, "exp")
    }

    func testBroadcastingMatchesIndexArithmetic() {
        let a = randomTensor([2, 3, 4], seed: 2)
        let b = randomTensor([3, 1], seed: 3)
        let (av, bv) = (a.scalars, b.scalars)
        var expected: [Float] = []
        for i in 0..<2 {
            for j in 0..<3 { for k in 0..<4 { expected.append(av[(i * 3 + j) * 4 + k] * bv[j]) } }
        }
        assertClose(a * b, expected, rtol: 0, atol: 0, "mul [2,3,4] by [3,1]")
        XCTAssertEqual((b * a).shape, [2, 3, 4])
        let summed = sum(a, axes: [0, 2])
        var expectedSums = [Float](repeating: 0, count: 3)
        for i in 0..<2 {
            for j in 0..<3 { for k in 0..<4 { expectedSums[j] += av[(i * 3 + j) * 4 + k] } }
        }
        assertClose(summed, expectedSums, rtol: 1e-6, atol: 1e-6, "sum over axes 0, 2")
    }

    func testMatmulMatchesTripleLoop() {
        let a = randomTensor([2, 3, 5], seed: 4)
        let b = randomTensor([2, 5, 4], seed: 5)
        let (av, bv) = (a.scalars, b.scalars)
        var expected: [Float] = []
        for n in 0..<2 {
            for i in 0..<3 {
                for j in 0..<4 {
                    var acc = 0.0
                    for k in 0..<5 {
                        acc += Double(av[(n * 3 + i) * 5 + k]) * Double(bv[(n * 5 + k) * 4 + j])
                    }
                    expected.append(Float(acc))
                }
            }
        }
        assertClose(matmul(a, b), expected, rtol: 1e-5, atol: 1e-6, "batched matmul")
    }

    func testConv2dMatchesDirectConvolution() {
        for (kernel, stride, padding) in [(3, 1, 1), (3, 2, 1), (1, 1, 0), (4, 2, 2)] {
            let x = randomTensor([2, 3, 7, 6], seed: 6)
            let w = randomTensor([5, 3, kernel, kernel], seed: 7)
            let b = randomTensor([5], seed: 8)
            let y = conv2d(x, weight: w, bias: b, stride: stride, padding: padding)
            let ho = (7 + 2 * padding - kernel) / stride + 1
            let wo = (6 + 2 * padding - kernel) / stride + 1
            XCTAssertEqual(y.shape, [2, 5, ho, wo])
            let (xv, wv, bv) = (x.scalars, w.scalars, b.scalars)
            var expected: [Float] = []
            for n in 0..<2 {
                for o in 0..<5 {
                    for oy in 0..<ho {
                        for ox in 0..<wo {
                            var acc = Double(bv[o])
                            for c in 0..<3 {
                                for ky in 0..<kernel {
                                    for kx in 0..<kernel {
                                        let (iy, ix) = (
                                            oy * stride - padding + ky, ox * stride - padding + kx
                                        )
                                        guard (0..<7).contains(iy), (0..<6).contains(ix) else {
                                            continue
                                        }
                                        acc +=
                                            Double(xv[((n * 3 + c) * 7 + iy) * 6 + ix])
                                            * Double(wv[((o * 3 + c) * kernel + ky) * kernel + kx])
                                    }
                                }
                            }
                            expected.append(Float(acc))
                        }
                    }
                }
            }
            assertClose(
                y, expected, rtol: 1e-5, atol: 1e-5, "conv2d k\(kernel) s\(stride) p\(padding)")
        }
    }

    /// Direct float64 sums of a 3x3 stride-1 padding-1 convolution with bias, and each
    /// output's Σ |x w| over its terms.
    func directConvolution(_ x: Tensor, _ weight: Tensor, _ bias: Tensor) -> (
        y: [Float], magnitude: [Float]
    ) {
        let (n, c, h, w, o) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3], weight.shape[0])
        let (xv, wv, bv) = (x.scalars, weight.scalars, bias.scalars)
        var expected: [Float] = []
        var magnitude: [Float] = []
        for image in 0..<n {
            for oc in 0..<o {
                for oy in 0..<h {
                    for ox in 0..<w {
                        var (acc, absolute) = (Double(bv[oc]), abs(Double(bv[oc])))
                        for ic in 0..<c {
                            for ky in 0..<3 {
                                for kx in 0..<3 {
                                    let (iy, ix) = (oy - 1 + ky, ox - 1 + kx)
                                    guard (0..<h).contains(iy), (0..<w).contains(ix) else {
                                        continue
                                    }
                                    let term =
                                        Double(xv[((image * c + ic) * h + iy) * w + ix])
                                        * Double(wv[((oc * c + ic) * 3 + ky) * 3 + kx])
                                    acc += term
                                    absolute += abs(term)
                                }
                            }
                        }
                        expected.append(Float(acc))
                        magnitude.append(Float(absolute))
                    }
                }
            }
        }
        return (expected, magnitude)
    }

    func testWinogradConvolutionMatchesDirectConvolution() {
        // 16+ channels, 3x3, stride 1, padding 1, sizes of 256+ pixels divisible by 4: the
        // Winograd path, with F(2x2, 3x3) and F(4x4, 3x3) tiles; three images, so that a
        // part of the split holds the tiles of two.
        let (n, c, o) = (3, 16, 18)
        let x = randomTensor([n, c, 16, 20], seed: 42)
        let weight = randomTensor([o, c, 3, 3], seed: 43, scale: 0.3)
        let bias = randomTensor([o], seed: 44)
        defer { Winograd.largeTiles = true }
        Winograd.largeTiles = false
        assertClose(
            conv2d(x, weight: weight, bias: bias, stride: 1, padding: 1),
            directConvolution(x, weight, bias).y, rtol: 1e-5, atol: 1e-5,
            "winograd F(2x2, 3x3) conv2d")
        // F(4x4, 3x3)'s transforms carry a tile's terms through values up to ~920 times
        // their magnitudes (|Aᵀ| (|G| |g| |Gᵀ| ⊙ |Bᵀ| |d| |B|) |A| against Σ |g ⊙ d|, at
        // worst over positive tiles), each rounded to float32 (2⁻²⁴): a few such roundings
        // bound the error. A wrong coefficient errs by the outputs' own size. Rows of 5, 8,
        // 12 and 2 tiles, one to four rows of them.
        Winograd.largeTiles = true
        for (h, w) in [(16, 20), (8, 32), (4, 48), (8, 8)] {
            let x = randomTensor([n, c, h, w], seed: UInt64(45 + w))
            let (expected, magnitude) = directConvolution(x, weight, bias)
            let y = conv2d(x, weight: weight, bias: bias, stride: 1, padding: 1).scalars
            let bound = 2 * 920 / Float(1 << 24)
            for i in expected.indices where !(abs(y[i] - expected[i]) <= bound * magnitude[i]) {
                return XCTFail(
                    "winograd F(4x4, 3x3) conv2d \(h)x\(w) index \(i): \(y[i]) vs \(expected[i]) (terms' magnitude \(magnitude[i]))"
                )
            }
        }
    }

    func testSingleLargeImageConvolutionSplitOverCoresMatchesDirectConvolution() {
        // One image large enough that im2col and the GEMM are split over threads.
        let x = randomTensor([1, 8, 32, 32], seed: 40)
        let w = randomTensor([4, 8, 3, 3], seed: 41)
        let (xv, wv) = (x.scalars, w.scalars)
        var expected: [Float] = []
        for o in 0..<4 {
            for oy in 0..<32 {
                for ox in 0..<32 {
                    var acc = 0.0
                    for c in 0..<8 {
                        for ky in 0..<3 {
                            for kx in 0..<3 {
                                let (iy, ix) = (oy - 1 + ky, ox - 1 + kx)
                                guard (0..<32).contains(iy), (0..<32).contains(ix) else { continue }
                                acc +=
                                    Double(xv[(c * 32 + iy) * 32 + ix])
                                    * Double(wv[((o * 8 + c) * 3 + ky) * 3 + kx])
                            }
                        }
                    }
                    expected.append(Float(acc))
                }
            }
        }
        // Repeated: a race between the threads shows up only now and then.
        for _ in 0..<20 {
            assertClose(
                conv2d(x, weight: w, padding: 1), expected, rtol: 1e-5, atol: 1e-5,
                "conv2d, one 8x32x32 image")
        }
    }

    func testGroupNormAndLayerNormMatchDefinitions() {
        let x = randomTensor([2, 6, 4, 4], seed: 9, scale: 3) + 5
        let (w, b) = (randomTensor([6], seed: 10), randomTensor([6], seed: 11))
        let y = groupNorm(x, groups: 3, weight: w, bias: b, eps: 1e-5)
        let (xv, wv, bv) = (x.scalars, w.scalars, b.scalars)
        var expected = [Float](repeating: 0, count: x.count)
        for n in 0..<2 {
            for g in 0..<3 {
                let range = ((n * 6 + g * 2) * 16)..<((n * 6 + g * 2 + 2) * 16)
                let mean = range.reduce(0.0) { $0 + Double(xv[$1]) } / 32
                let variance = range.reduce(0.0) { $0 + pow(Double(xv[$1]) - mean, 2) } / 32
                for i in range {
                    let c = (i / 16) % 6
                    expected[i] = Float(
                        (Double(xv[i]) - mean) / (variance + 1e-5).squareRoot() * Double(wv[c])
                            + Double(bv[c]))
                }
            }
        }
        assertClose(y, expected, rtol: 1e-5, atol: 1e-5, "groupNorm")

        let rows = randomTensor([3, 10], seed: 12, scale: 2) - 4
        let (g, h) = (randomTensor([10], seed: 13), randomTensor([10], seed: 14))
        let rv = rows.scalars
        let expectedRows = (0..<30).map { i -> Float in
            let row = rv[(i / 10 * 10)..<(i / 10 * 10 + 10)].map(Double.init)
            let mean = row.reduce(0, +) / 10
            let variance = row.map { pow($0 - mean, 2) }.reduce(0, +) / 10
            return Float(
                (Double(rv[i]) - mean) / (variance + 1e-5).squareRoot() * Double(g.scalars[i % 10])
                    + Double(h.scalars[i % 10]))
        }
        assertClose(
            layerNorm(rows, weight: g, bias: h), expectedRows, rtol: 1e-5, atol: 1e-5, "layerNorm")
    }

    /// The fused op is SiLU after group norm, bit for bit, forward and backward: every UNet
    /// pass takes it, and DUO's trained and reference passes must agree bit for bit where
    /// the adapters are zero. 35 pixels leave a remainder after the vectors.
    func testGroupNormSiLUGivesTheBitsOfSiLUAfterGroupNorm() {
        let x = randomTensor([3, 8, 5, 7], seed: 90, scale: 3) + 1
        let (w, b) = (randomTensor([8], seed: 91), randomTensor([8], seed: 92))
        let seed = randomTensor([3, 8, 5, 7], seed: 93)
        func gradients(_ f: ([Tensor]) -> Tensor) -> (value: [Float], grads: [[Float]]) {
            let leaves = [x, w, b].map { Tensor($0.scalars, shape: $0.shape, requiresGrad: true) }
            let y = f(leaves)
            return (y.scalars, y.gradients(for: leaves, seed: seed).map { $0!.scalars })
        }
        let fused = gradients { groupNormSiLU($0[0], groups: 4, weight: $0[1], bias: $0[2]) }
        let twoOps = gradients { silu(groupNorm($0[0], groups: 4, weight: $0[1], bias: $0[2])) }
        XCTAssertEqual(fused.value, twoOps.value, "forward")
        for (i, name) in ["dX", "dWeight", "dBias"].enumerated() {
            XCTAssertEqual(fused.grads[i], twoOps.grads[i], name)
        }
        XCTAssertEqual(
            GradMode.withNoGrad { groupNormSiLU(x, groups: 4, weight: w, bias: b) }.scalars,
            twoOps.value, "forward without gradients")
    }

    func testAttentionMatchesNaiveSoftmaxAttention() {
        // Key counts cover the kernel's paths: short rows, 16- or 8-wide blocks with a tail, and
        // the long-row path (>= 48 keys); 11 queries leave a partial block of queries.
        for (tk, causal) in [
            (11, false), (11, true), (3, false), (20, false), (64, false), (70, true),
        ] {
            let (batch, tq, heads, d) = (2, causal ? tk : 11, 2, 12)
            let q = randomTensor([batch, tq, heads * d], seed: 15)
            let k = randomTensor([batch, tk, heads * d], seed: 16)
            let v = randomTensor([batch, tk, heads * d], seed: 17)
            let out = scaledDotProductAttention(
                query: q, key: k, value: v, heads: heads, causal: causal)
            let (qv, kv, vv) = (q.scalars, k.scalars, v.scalars)
            var expected = [Float](repeating: 0, count: out.count)
            for n in 0..<batch {
                for h in 0..<heads {
                    for i in 0..<tq {
                        let visible = causal ? (0...(i + tk - tq)) : (0...(tk - 1))
                        let scores = visible.map { j in
                            (0..<d).reduce(0.0) {
                                $0 + Double(qv[(n * tq + i) * heads * d + h * d + $1])
                                    * Double(kv[(n * tk + j) * heads * d + h * d + $1])
                            } / Double(d).squareRoot()
                        }
                        let m = scores.max()!
                        let e = scores.map { Foundation.exp($0 - m) }
                        let total = e.reduce(0, +)
                        for c in 0..<d {
                            expected[(n * tq + i) * heads * d + h * d + c] = Float(
                                zip(visible, e).reduce(0.0) {
                                    $0 + $1.1 / total
                                        * Double(vv[(n * tk + $1.0) * heads * d + h * d + c])
                                })
                        }
                    }
                }
            }
            assertClose(
                out, expected, rtol: 1e-5, atol: 1e-6, "attention tk=\(tk) causal=\(causal)")
        }
        let logits = randomTensor([2, 5], seed: 18, scale: 3)
        let lv = logits.scalars.map(Double.init)
        let softmaxExpected = (0..<10).map { i -> Float in
            let row = lv[(i / 5 * 5)..<(i / 5 * 5 + 5)]
            return Float(Foundation.exp(lv[i]) / row.map { Foundation.exp($0) }.reduce(0, +))
        }
        assertClose(softmax(logits), softmaxExpected, rtol: 1e-6, atol: 1e-7, "softmax")
    }

    /// A pass that records gradients and one that does not give the same bits: DUO's loss
    /// compares the trained model's outputs with the reference's, run without gradients, and
    /// at the start (LoRA B = 0) the two must agree exactly; gradient checkpointing runs each
    /// forward pass once of each kind. Both ways of the backward pass's probabilities.
    func testAttentionWithAndWithoutGradientsGivesTheSameBits() {
        let saved = keptProbabilitiesLimit
        defer { keptProbabilitiesLimit = saved }
        for (tk, causal) in [(24, false), (70, false), (40, true)] {
            let tq = causal ? tk : 33
            let inputs = [
                randomTensor([2, tq, 32], seed: 60), randomTensor([2, tk, 32], seed: 61),
                randomTensor([2, tk, 32], seed: 62),
            ]
            func attention(_ x: [Tensor]) -> Tensor {
                scaledDotProductAttention(
                    query: x[0], key: x[1], value: x[2], heads: 2, causal: causal)
            }
            let plain = GradMode.withNoGrad { attention(inputs) }.scalars
            for limit in [Int.max, 0] {
                keptProbabilitiesLimit = limit
                let leaves = inputs.map { Tensor($0.scalars, shape: $0.shape, requiresGrad: true) }
                XCTAssertEqual(
                    attention(leaves).scalars, plain,
                    "tk=\(tk) causal=\(causal), probabilities kept: \(limit > 0)")
            }
        }
    }

    /// The 1x1 convolutions between a map and token rows are a linear layer on the map's
    /// pixels, transposed (a bias, a residual, neither).
    func testPointwiseProjectionsAreALinearLayerOnTransposedRows() {
        let (x, w, b) = (
            randomTensor([3, 6, 10], seed: 80), randomTensor([7, 6], seed: 81),
            randomTensor([7], seed: 82)
        )
        let tokens = linear(x.transposed(1, 2), weight: w, bias: b)
        assertClose(
            pointwiseToTokens(x, weight: w, bias: b), tokens.scalars, rtol: 1e-5, atol: 1e-6,
            "pointwiseToTokens")
        let t = randomTensor([3, 10, 6], seed: 83)
        let r = randomTensor([3, 7, 10], seed: 84)
        let rows = linear(t, weight: w, bias: b).transposed(1, 2)
        assertClose(
            pointwiseFromTokens(t, weight: w, bias: b, residual: r), (rows + r).scalars,
            rtol: 1e-5, atol: 1e-6, "pointwiseFromTokens")
        assertClose(
            pointwiseFromTokens(t, weight: w),
            linear(t, weight: w).transposed(1, 2).scalars, rtol: 1e-5, atol: 1e-6,
            "pointwiseFromTokens without bias or residual")
    }

    func testShapeOpsMoveValuesWhereExpected() {
        let x = Tensor((0..<24).map(Float.init), shape: [2, 3, 4])
        let p = x.permuted([2, 0, 1])  // p[k, i, j] = x[i, j, k]
        XCTAssertEqual(p.shape, [4, 2, 3])
        XCTAssertEqual(p.scalars[(3 * 2 + 1) * 3 + 2], Float((1 * 3 + 2) * 4 + 3))
        let up = upsampleNearest2x(Tensor([1, 2, 3, 4], shape: [1, 1, 2, 2]))
        XCTAssertEqual(up.scalars, [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4])
        let padded = pad2d(Tensor([1, 2, 3, 4], shape: [1, 2, 2]), right: 1, bottom: 1)
        XCTAssertEqual(padded.scalars, [1, 2, 0, 3, 4, 0, 0, 0, 0])
        let joined = concat([x, Tensor.full(-1, [2, 1, 4])], axis: 1)
        XCTAssertEqual(joined.shape, [2, 4, 4])
        XCTAssertEqual(Array(joined.scalars[12..<20]), [-1, -1, -1, -1, 12, 13, 14, 15])
        let parts = split(x, sizes: [3, 1], axis: 2)
        XCTAssertEqual(parts[1].scalars, [3, 7, 11, 15, 19, 23])
        let table = Tensor((0..<6).map(Float.init), shape: [3, 2])
        XCTAssertEqual(embedding([2, 0], weight: table).scalars, [4, 5, 0, 1])
    }

    func testTimestepEmbeddingMatchesDiffusersFormula() {
        // diffusers get_timestep_embedding: exponent = -ln(max_period) * i / (half - shift),
        // emb = t * e^exponent, then [sin, cos] (or [cos, sin] with flip_sin_to_cos).
        let timesteps: [Float] = [0, 1, 499, 999]
        for (flip, shift) in [(false, Float(1)), (true, Float(0))] {
            let y = timestepEmbedding(
                timesteps, dim: 8, flipSinToCos: flip, downscaleFreqShift: shift)
            var expected: [Float] = []
            for t in timesteps {
                let angles = (0..<4).map {
                    Double(t)
                        * Foundation.exp(
                            -Foundation.log(10000.0) * Double($0) / (4 - Double(shift)))
                }
                let (s, c) = (angles.map { Float(sin($0)) }, angles.map { Float(cos($0)) })
                expected += flip ? c + s : s + c
            }
            // float32 angles of up to ~1000 rad carry ~6e-5 absolute error in diffusers too
            assertClose(y, expected, rtol: 0, atol: 2e-4, "timestep embedding flip=\(flip)")
        }
    }
}
