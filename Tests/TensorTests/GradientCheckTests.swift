import Tensor
import TestSupport
import XCTest

/// Every differentiable op, every input that takes a gradient, against central finite
/// differences (see `checkGradients` for the tolerance).
final class GradientCheckTests: XCTestCase {
    func testBroadcastingArithmetic() {
        let a = randomTensor([2, 3, 4], seed: 1)
        for bShape in [[2, 3, 4], [3, 1], [4], [1], [2, 1, 4]] {
            let b = randomTensor(bShape, seed: 2)
            checkGradients([a, b], "add \(bShape)") { $0[0] + $0[1] }
            checkGradients([a, b], "sub \(bShape)") { $0[0] - $0[1] }
            checkGradients([a, b], "mul \(bShape)") { $0[0] * $0[1] }
            // Keep the divisor away from 0: b in [1, 2).
            let divisor = Tensor.uniform(bShape, low: 1, high: 2, key: RandomKey(seed: 3))
            checkGradients([a, divisor], "div \(bShape)") { $0[0] / $0[1] }
            checkGradients([b, a], "add reversed \(bShape)") { $0[0] + $0[1] }
        }
        checkGradients([a], "affine") { $0[0] * 1.5 + 0.25 }
        checkGradients([a], "negate") { -$0[0] }
    }

    func testMatmulAndLinear() {
        let a = randomTensor([2, 3, 4], seed: 4)
        checkGradients([a, randomTensor([4, 5], seed: 5)], "matmul shared") { matmul($0[0], $0[1]) }
        checkGradients([a, randomTensor([2, 4, 5], seed: 6)], "matmul batched") {
            matmul($0[0], $0[1])
        }
        let (w, b) = (randomTensor([5, 4], seed: 7), randomTensor([5], seed: 8))
        checkGradients([a, w, b], "linear") { linear($0[0], weight: $0[1], bias: $0[2]) }
        checkGradients([a, w], "linear without bias") { linear($0[0], weight: $0[1]) }
    }

    func testConv2d() {
        let x = randomTensor([2, 3, 5, 5], seed: 9)
        let b = randomTensor([4], seed: 10)
        for (kernel, stride, padding) in [(3, 1, 1), (3, 2, 1), (1, 1, 0), (2, 2, 0), (3, 1, 0)] {
            let w = randomTensor([4, 3, kernel, kernel], seed: 11, scale: 0.5)
            checkGradients([x, w, b], "conv2d k\(kernel) s\(stride) p\(padding)") {
                conv2d($0[0], weight: $0[1], bias: $0[2], stride: stride, padding: padding)
            }
        }
    }

    func testConv2dWinogradPathGradients() {
        // 16 channels and 256 pixels: conv2d's Winograd path, forward, dX and dW, with
        // F(2x2, 3x3) tiles (dW always).
        let x = randomTensor([1, 16, 16, 16], seed: 50)
        let w = randomTensor([16, 16, 3, 3], seed: 51, scale: 0.2)
        let b = randomTensor([16], seed: 52)
        defer { Winograd.largeTiles = true }
        Winograd.largeTiles = false
        checkGradients([x, w, b], "conv2d winograd F(2x2, 3x3)") {
            conv2d($0[0], weight: $0[1], bias: $0[2], stride: 1, padding: 1)
        }
    }

    func testConv2dWinogradLargeTilesGradients() {
        // The same with F(4x4, 3x3) tiles for the forward pass and dX. Its float32 rounding
        // is about ten times F(2x2, 3x3)'s, too much for differences over ±0.01; but the
        // convolution is linear in each input, so the central difference has no truncation
        // error at any step, and a step of ±0.5 divides the rounding by 50. (dW is always
        // F(2x2, 3x3)'s, checked above.)
        let x = randomTensor([1, 16, 16, 16], seed: 50)
        let w = randomTensor([16, 16, 3, 3], seed: 51, scale: 0.2)
        let b = randomTensor([16], seed: 52)
        checkGradients([x, w, b], checked: [0], eps: 0.5, "conv2d winograd F(4x4, 3x3) dX") {
            conv2d($0[0], weight: $0[1], bias: $0[2], stride: 1, padding: 1)
        }
    }

    func testNormalization() {
        let x = randomTensor([2, 4, 3, 3], seed: 12, scale: 2) + 0.5
        let (w, b) = (randomTensor([4], seed: 13), randomTensor([4], seed: 14))
        checkGradients([x, w, b], "groupNorm") {
            groupNorm($0[0], groups: 2, weight: $0[1], bias: $0[2])
        }
        checkGradients([x, w, b], "groupNormSiLU") {
            groupNormSiLU($0[0], groups: 2, weight: $0[1], bias: $0[2])
        }
        let y = randomTensor([3, 5, 6], seed: 15) + 1
        let (g, h) = (randomTensor([6], seed: 16), randomTensor([6], seed: 17))
        checkGradients([y, g, h], "layerNorm") { layerNorm($0[0], weight: $0[1], bias: $0[2]) }
        checkGradients([randomTensor([3, 7], seed: 18, scale: 2)], "softmax") { softmax($0[0]) }
    }

    func testActivations() {
        let x = randomTensor([4, 6], seed: 19, scale: 2)
        checkGradients([x], "silu") { silu($0[0]) }
        checkGradients([x], "gelu") { gelu($0[0]) }
        checkGradients([x], "gelu tanh") { gelu($0[0], approximate: true) }
        checkGradients([x], "geglu") { geglu($0[0]) }  // rows [h | g] of 3 + 3
        checkGradients([x], "quickGELU") { quickGELU($0[0]) }
        checkGradients([x], "softplus") { softplus($0[0]) }
        checkGradients([x], "logSigmoid") { logSigmoid($0[0]) }
        checkGradients([x], "exp") { exp($0[0]) }
        // Inputs kept 0.05 away from the bounds, where clamp is not differentiable.
        let away = Tensor(
            x.scalars.map { abs($0 - 1) < 0.05 || abs($0 + 1) < 0.05 ? $0 + 0.1 : $0 },
            shape: x.shape)
        checkGradients([away], "clamp") { clamp($0[0], min: -1, max: 1) }
    }

    /// proj_in and proj_out of a transformer block: a 1x1 convolution between a map and
    /// token rows, every input's gradient (the residual's too).
    func testPointwiseProjections() {
        let (x, w, b) = (
            randomTensor([2, 3, 5], seed: 70), randomTensor([4, 3], seed: 71),
            randomTensor([4], seed: 72)
        )
        checkGradients([x, w, b], "pointwiseToTokens") {
            pointwiseToTokens($0[0], weight: $0[1], bias: $0[2])
        }
        let (t, r) = (randomTensor([2, 5, 3], seed: 73), randomTensor([2, 4, 5], seed: 74))
        checkGradients([t, w, b, r], "pointwiseFromTokens") {
            pointwiseFromTokens($0[0], weight: $0[1], bias: $0[2], residual: $0[3])
        }
        checkGradients([t, w], "pointwiseFromTokens, no bias or residual") {
            pointwiseFromTokens($0[0], weight: $0[1])
        }
    }

    func testAttention() {
        let q = randomTensor([2, 5, 8], seed: 20)
        let k = randomTensor([2, 5, 8], seed: 21)
        let v = randomTensor([2, 5, 8], seed: 22)
        checkGradients([q, k, v], "self-attention") {
            scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], heads: 2)
        }
        checkGradients([q, k, v], "causal self-attention") {
            scaledDotProductAttention(
                query: $0[0], key: $0[1], value: $0[2], heads: 2, causal: true)
        }
        // Longer rows take the kernel's blocked paths (16-key vectors, >= 48 keys).
        for keys in [20, 64] {
            let (longQ, longK, longV) = (
                randomTensor([1, 9, 16], seed: 30), randomTensor([1, keys, 16], seed: 31),
                randomTensor([1, keys, 16], seed: 32)
            )
            checkGradients([longQ, longK, longV], "attention with \(keys) keys") {
                scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], heads: 2)
            }
        }
        let causalQ = randomTensor([1, 50, 8], seed: 33)
        checkGradients(
            [causalQ, randomTensor([1, 50, 8], seed: 34), randomTensor([1, 50, 8], seed: 35)],
            "causal attention, 50 tokens"
        ) {
            scaledDotProductAttention(
                query: $0[0], key: $0[1], value: $0[2], heads: 1, causal: true)
        }
        let textK = randomTensor([2, 3, 8], seed: 23)
        let textV = randomTensor([2, 3, 8], seed: 24)
        checkGradients([q, textK, textV], "cross-attention") {
            scaledDotProductAttention(query: $0[0], key: $0[1], value: $0[2], heads: 4)
        }
    }

    /// Above `keptProbabilitiesLimit` the backward pass computes the probabilities again
    /// instead of reading them: against finite differences, and the same bits as the kept
    /// path, on every shape the kernel blocks differently.
    func testAttentionRecomputingItsProbabilitiesInTheBackwardPass() {
        let saved = keptProbabilitiesLimit
        defer { keptProbabilitiesLimit = saved }
        let shapes: [(tq: Int, tk: Int, causal: Bool)] = [
            (5, 5, false), (9, 20, false), (9, 64, false), (50, 50, true), (5, 3, false),
        ]
        for (i, shape) in shapes.enumerated() {
            let seed = UInt64(40 + 3 * i)
            let inputs = [
                randomTensor([2, shape.tq, 16], seed: seed),
                randomTensor([2, shape.tk, 16], seed: seed + 1),
                randomTensor([2, shape.tk, 16], seed: seed + 2),
            ]
            func gradients() -> [[Float]] {
                let leaves = inputs.map { Tensor($0.scalars, shape: $0.shape, requiresGrad: true) }
                let out = scaledDotProductAttention(
                    query: leaves[0], key: leaves[1], value: leaves[2], heads: 2,
                    causal: shape.causal)
                sum(out * out).backward()
                return leaves.map { $0.grad!.scalars }
            }
            keptProbabilitiesLimit = Int.max
            let kept = gradients()
            keptProbabilitiesLimit = 0
            XCTAssertEqual(gradients(), kept, "\(shape): recomputed probabilities, same bits")
            checkGradients(inputs, "attention \(shape), probabilities recomputed") {
                scaledDotProductAttention(
                    query: $0[0], key: $0[1], value: $0[2], heads: 2, causal: shape.causal)
            }
        }
    }

    func testShapeOps() {
        let x = randomTensor([2, 3, 4], seed: 25)
        checkGradients([x], "reshape") { $0[0].reshaped([4, -1]) * $0[0].reshaped([4, 6]) }
        checkGradients([x], "permute") { $0[0].permuted([2, 0, 1]) }
        checkGradients([x], "transpose") { $0[0].transposed(1, 2) }
        checkGradients([randomTensor([1, 2, 3, 3], seed: 26)], "upsampleNearest2x") {
            upsampleNearest2x($0[0])
        }
        checkGradients([randomTensor([2, 2, 3, 4], seed: 36)], "pad2d") {
            pad2d($0[0], left: 1, right: 2, top: 0, bottom: 1)
        }
        let y = randomTensor([2, 2, 4], seed: 27)
        checkGradients([x, y], "concat") { concat([$0[0], $0[1]], axis: 1) }
        checkGradients([x], "split") {
            let parts = split($0[0], sizes: [1, 3], axis: 2)
            return parts[0] * parts[1]
        }
    }

    func testReductionsAndEmbedding() {
        let x = randomTensor([2, 3, 4], seed: 28)
        checkGradients([x], "sum") { sum($0[0] * $0[0]) }
        checkGradients([x], "mean") { mean($0[0] * $0[0]) }
        checkGradients([x], "sum axes") { sum($0[0] * $0[0], axes: [0, 2]) }
        checkGradients([x], "mean axes keepDims") { mean($0[0] * $0[0], axes: [1], keepDims: true) }
        let table = randomTensor([5, 3], seed: 29)
        checkGradients([table], "embedding") { embedding([4, 0, 4, 2], weight: $0[0]) }
    }
}
