import CKernels

/// Mixed-precision GEMM: op(A) and op(B) rounded to bfloat16 (round to nearest even, as
/// PyTorch's autocast rounds), products and sums in float32. On a CPU with AVX512-BF16 each
/// instruction multiplies-and-adds twice the pairs an fp32 FMA does (`Sources/CKernels/
/// gemm_bf16.c`); elsewhere the same blocking runs a plain-C tile, slower than OpenBLAS's
/// sgemm, so callers choose this only where `isNative` holds.
public enum BF16GEMM {
    /// Whether this CPU multiplies bf16 pairs in hardware (AVX512-BF16).
    public static let isNative: Bool = duo_cpu_has_avx512bf16() != 0

    /// C = alpha * op(A) op(B) + beta * C, row-major, as `BLAS.gemm`, with bf16 operands;
    /// split over cores as `BLAS.gemm` splits. `portable` runs the plain-C tile whatever the
    /// CPU (tests compare the two).
    public static func gemm(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int, portable: Bool = false
    ) {
        guard m > 0, n > 0 else { return }
        BLAS.splitOverCores(
            transA: transA, transB: transB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb,
            c: c, ldc: ldc
        ) { m, n, a, b, c in
            let kernel = portable ? duo_gemm_bf16_portable : duo_gemm_bf16
            kernel(
                transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        }
    }

    /// `x` rounded to the nearest bfloat16 (ties to even), as a Float.
    public static func rounded(_ x: Float) -> Float {
        Float(bitPattern: UInt32(duo_bf16_from_float(x)) << 16)
    }
}
