import CKernels

/// 3x3 stride-1 convolution with padding 1 by Winograd's minimal filtering (Lavin & Gray,
/// CVPR 2016): F(4x4, 3x3) where H and W are divisible by 4 (winograd4.c: 36 GEMMs over
/// transformed 6x6 tiles, 4x fewer multiplies than im2col + GEMM), else F(2x2, 3x3)
/// (winograd.c: 16 GEMMs over 4x4 tiles, 2.25x fewer). `conv2d` takes this path for its
/// forward pass, for dX, which is the same convolution of dY with the kernel transposed
/// and rotated by 180°, and from 16x16 pixels for dW, by F(2x2, 3x3) tiles.
///
/// The transforms move 2.25x (F(4x4)) or 4x (F(2x2)) the image's floats, so the path pays
/// where GEMMs dominate: 16 or more channels and enough tiles (`applies`). Float32 results
/// differ from the direct sum by rounding only, F(4x4, 3x3)'s about ten times as much as
/// the direct sum's.
public enum Winograd {
    /// Off: every convolution runs as im2col + GEMM (benchmarks compare the two paths).
    nonisolated(unsafe) public static var isEnabled = true

    /// Whether a convolution is one this path computes, and one it speeds up: from 8x8
    /// pixels with F(4x4, 3x3) tiles, from 16x16 with F(2x2, 3x3) ones (below, the
    /// transforms eat the gain; the measurements are in BENCHMARKS.md).
    /// With bf16 GEMMs (`BLAS.mixedPrecision` on an AVX512-BF16 CPU) im2col + GEMM wins:
    /// the transforms cost what they did while the GEMMs got faster, and bf16 operands in
    /// the transformed domain round more (BENCHMARKS.md, "Mixed precision").
    static func applies(_ s: duo_conv_shape, outChannels: Int) -> Bool {
        guard
            isEnabled && !(BLAS.mixedPrecision && BF16GEMM.isNative) && s.kh == 3 && s.kw == 3
                && s.stride == 1 && s.pad == 1 && s.H % 2 == 0 && s.W % 2 == 0 && s.C >= 16
                && outChannels >= 16
        else { return false }
        return s.H * s.W >= (tile(height: s.H, width: s.W).side == 4 ? 64 : 256)
    }

    /// Whether dW of a convolution this path computes is Winograd's too: its tiles are
    /// F(2x2, 3x3)'s, which pay from 16x16 pixels.
    static func appliesToWeightGradient(_ s: duo_conv_shape) -> Bool { s.H * s.W >= 256 }

    /// F(4x4, 3x3) where H and W are divisible by 4: 36 GEMMs over 6x6 tiles, 1.8x fewer
    /// multiplies than F(2x2, 3x3) and 0.56x its transformed floats, at about ten float32
    /// roundings of error where F(2x2, 3x3) has one or two (winograd4.c). Off: F(2x2, 3x3)
    /// everywhere (benchmarks compare the two).
    nonisolated(unsafe) public static var largeTiles = true

    /// The tile a convolution over H x W uses: its output side (2 or 4) and its number of
    /// transformed values (16 or 36).
    static func tile(height h: Int, width w: Int) -> (side: Int, points: Int) {
        largeTiles && h % 4 == 0 && w % 4 == 0 ? (4, 36) : (2, 16)
    }

    /// y [B, O, H, W] = x [B, C, H, W] convolved with `weight` (+ bias). `weight` is
    /// [O, C, 3, 3], or with `adjoint` [C, O, 3, 3] used transposed and rotated (dX from dY).
    static func convolve(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, adjoint: Bool = false)
        -> Tensor
    {
        let (batch, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let o = adjoint ? weight.shape[1] : weight.shape[0]
        let (side, points) = tile(height: h, width: w)
        let u = transformedWeights(
            weight, outChannels: o, inChannels: c, adjoint: adjoint, points: points)
        let y = Tensor.empty([batch, o, h, w])
        let tiles = h * w / (side * side)
        // Images are split over the cores; each part's GEMMs run over all its images'
        // tiles at once (a part of one image still splits its GEMMs in BLAS.gemm).
        Parallel.forEachPart(batch, costPerItem: 2 * points * o * c * tiles) { _, images in
            let n = images.count * tiles
            let ld = BLAS.paddedRowStride(n)
            let v = Tensor.empty([points, c, ld])  // Bᵀ d B, n tiles in each row of ld
            let m = Tensor.empty([points, o, ld])  // U ⊙ V, summed over channels
            let (first, count) = (images.lowerBound, images.count)
            if side == 4 {
                duo_winograd4_input(x.pointer + first * c * h * w, v.pointer, count, c, h, w, ld)
            } else {
                duo_winograd_input(x.pointer + first * c * h * w, v.pointer, count, c, h, w, ld)
            }
            for xi in 0..<points {
                BLAS.gemm(
                    m: o, n: n, k: c, a: u.pointer + xi * o * c, lda: c,
                    b: v.pointer + xi * c * ld, ldb: ld, c: m.pointer + xi * o * ld, ldc: ld)
            }
            let output = side == 4 ? duo_winograd4_output : duo_winograd_output
            output(m.pointer, bias?.pointer, y.pointer + first * o * h * w, count, o, h, w, ld)
        }
        return y
    }

    /// U [points, O, C] = G g Gᵀ of each kernel; made once and kept with the weight's memory
    /// until that memory changes (within `Storage.derivedBudgetBytes`), for a frozen weight (sampling and LoRA training reuse it
    /// every call) and for a trained one used without gradients (the passes between two
    /// optimizer steps that sample with it: ESD's trajectory). A pass that records
    /// gradients of a trained weight makes its own.
    private static func transformedWeights(
        _ weight: Tensor, outChannels o: Int, inChannels c: Int, adjoint: Bool, points: Int
    ) -> Tensor {
        func transform() -> Tensor {
            let u = Tensor.empty([points, o, c])
            let make = points == 36 ? duo_winograd4_weights : duo_winograd_weights
            make(weight.pointer, u.pointer, o, c, adjoint ? 1 : 0)
            return u
        }
        if weight.requiresGrad && GradMode.isEnabled { return transform() }
        return weight.storage.derived(
            "winograd \(points) \(adjoint)", bytes: points * o * c * MemoryLayout<Float>.stride,
            make: transform)!
    }

    /// dW [O, C, 3, 3] of y = conv(x, W) from x [B, C, H, W] and dY [B, O, H, W]: the
    /// forward pass's tiles run backwards (winograd.c), always F(2x2, 3x3). The sum over
    /// every image's tiles is the GEMMs' inner dimension, long and split by BLAS.gemm over
    /// the output, so the result does not depend on the thread count.
    static func weightGradient(x: Tensor, dY: Tensor) -> Tensor {
        let (batch, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let o = dY.shape[1]
        let tiles = h * w / 4, n = batch * tiles
        let ld = BLAS.paddedRowStride(n)
        let v = Tensor.empty([16, c, ld])  // Bᵀ d B, n tiles in each row of ld
        let d = Tensor.empty([16, o, ld])  // A dY Aᵀ
        Parallel.forEach(batch, costPerItem: 4 * (c + o) * h * w) { images in
            let first = images.lowerBound
            duo_winograd_input(
                x.pointer + first * c * h * w, v.pointer + first * tiles, images.count, c, h, w,
                ld)
            duo_winograd_output_adjoint(
                dY.pointer + first * o * h * w, d.pointer + first * tiles, images.count, o, h, w,
                ld)
        }
        let du = Tensor.empty([16, o, c])
        for xi in 0..<16 {
            // dU[ξ] [O, C] = D[ξ] [O, n] x V[ξ]ᵀ [n, C]
            BLAS.gemm(
                transB: true, m: o, n: c, k: n, a: d.pointer + xi * o * ld, lda: ld,
                b: v.pointer + xi * c * ld, ldb: ld, c: du.pointer + xi * o * c, ldc: c)
        }
        let dW = Tensor.empty([o, c, 3, 3])
        duo_winograd_weights_adjoint(du.pointer, dW.pointer, o, c)
        return dW
    }
}
