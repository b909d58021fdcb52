import CKernels

/// 3x3 stride-1 convolution with padding 1 by Winograd's minimal filtering F(2x2, 3x3)
/// (Lavin & Gray, CVPR 2016; the transforms are in winograd.c): 16 GEMMs over
/// transformed 4x4 tiles, 2.25x fewer multiplies than im2col + GEMM and a quarter of its
/// column memory. `conv2d` takes this path for its forward pass, for dX, which is the
/// same convolution of dY with the kernel transposed and rotated by 180°, and for dW.
///
/// The transforms move 4x the image's floats, so the path pays where GEMMs dominate: 16
/// or more channels, and 16x16 pixels or more (below that, the transforms eat the gain;
/// the measurements are in BENCHMARKS.md). Float32 results differ from the direct sum by
/// rounding only.
public enum Winograd {
    /// Off: every convolution runs as im2col + GEMM (benchmarks compare the two paths).
    nonisolated(unsafe) public static var isEnabled = true

    /// Whether a convolution is one this path computes, and one it speeds up.
    /// With bf16 GEMMs (`BLAS.mixedPrecision` on an AVX512-BF16 CPU) im2col + GEMM wins:
    /// the transforms cost what they did while the GEMMs got faster, and bf16 operands in
    /// the transformed domain round more (BENCHMARKS.md, "Mixed precision").
    static func applies(_ s: duo_conv_shape, outChannels: Int) -> Bool {
        isEnabled && !(BLAS.mixedPrecision && BF16GEMM.isNative) && s.kh == 3 && s.kw == 3
            && s.stride == 1 && s.pad == 1 && s.H % 2 == 0
            && s.W % 2 == 0
            && s.H * s.W >= 256 && s.C >= 16 && outChannels >= 16
    }

    /// y [B, O, H, W] = x [B, C, H, W] convolved with `weight` (+ bias). `weight` is
    /// [O, C, 3, 3], or with `adjoint` [C, O, 3, 3] used transposed and rotated (dX from dY).
    static func convolve(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, adjoint: Bool = false)
        -> Tensor
    {
        let (batch, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let o = adjoint ? weight.shape[1] : weight.shape[0]
        let u = transformedWeights(weight, outChannels: o, inChannels: c, adjoint: adjoint)
        let y = Tensor.empty([batch, o, h, w])
        let tiles = h * w / 4
        // Images are split over the cores; each part's GEMMs run over all its images'
        // tiles at once (a part of one image still splits its GEMMs in BLAS.gemm).
        Parallel.forEachPart(batch, costPerItem: 2 * 16 * o * c * tiles) { _, images in
            let n = images.count * tiles
            let v = Tensor.empty([16, c, n])  // Bᵀ d B
            let m = Tensor.empty([16, o, n])  // U ⊙ V, summed over channels
            duo_winograd_input(
                x.pointer + images.lowerBound * c * h * w, v.pointer, images.count, c, h, w, n)
            for xi in 0..<16 {
                BLAS.gemm(
                    m: o, n: n, k: c, a: u.pointer + xi * o * c, lda: c,
                    b: v.pointer + xi * c * n, ldb: n, c: m.pointer + xi * o * n, ldc: n)
            }
            duo_winograd_output(
                m.pointer, bias?.pointer, y.pointer + images.lowerBound * o * h * w,
                images.count, o, h, w, n)
        }
        return y
    }

    /// dW [O, C, 3, 3] of y = conv(x, W) from x [B, C, H, W] and dY [B, O, H, W]: the
    /// forward pass's tiles run backwards (winograd.c). The sum over every image's tiles
    /// is the GEMMs' inner dimension, long and split by BLAS.gemm over the output, so the
    /// result does not depend on the thread count.
    /// U [16, O, C] = G g Gᵀ of each kernel; made once and kept with the weight's memory
    /// until that memory changes, for a frozen weight (sampling and LoRA training reuse it
    /// every call) and for a trained one used without gradients (the passes between two
    /// optimizer steps that sample with it: ESD's trajectory). A pass that records
    /// gradients of a trained weight makes its own.
    private static func transformedWeights(
        _ weight: Tensor, outChannels o: Int, inChannels c: Int, adjoint: Bool
    ) -> Tensor {
        func transform() -> Tensor {
            let u = Tensor.empty([16, o, c])
            duo_winograd_weights(weight.pointer, u.pointer, o, c, adjoint ? 1 : 0)
            return u
        }
        if weight.requiresGrad && GradMode.isEnabled { return transform() }
        return weight.storage.derived("winograd \(adjoint)", make: transform)!
    }

    static func weightGradient(x: Tensor, dY: Tensor) -> Tensor {
        let (batch, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let o = dY.shape[1]
        let tiles = h * w / 4, n = batch * tiles
        let v = Tensor.empty([16, c, n])  // Bᵀ d B
        let d = Tensor.empty([16, o, n])  // A dY Aᵀ
        Parallel.forEach(batch, costPerItem: 4 * (c + o) * h * w) { images in
            let first = images.lowerBound
            duo_winograd_input(
                x.pointer + first * c * h * w, v.pointer + first * tiles, images.count, c, h, w, n)
            duo_winograd_output_adjoint(
                dY.pointer + first * o * h * w, d.pointer + first * tiles, images.count, o, h, w, n)
        }
        let du = Tensor.empty([16, o, c])
        for xi in 0..<16 {
            // dU[ξ] [O, C] = D[ξ] [O, n] x V[ξ]ᵀ [n, C]
            BLAS.gemm(
                transB: true, m: o, n: c, k: n, a: d.pointer + xi * o * n, lda: n,
                b: v.pointer + xi * c * n, ldb: n, c: du.pointer + xi * o * c, ldc: c)
        }
        let dW = Tensor.empty([o, c, 3, 3])
        duo_winograd_weights_adjoint(du.pointer, dW.pointer, o, c)
        return dW
    }
}
