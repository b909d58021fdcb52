import CBLAS
import CKernels

/// The bridge to OpenBLAS (the only file that imports CBLAS) and to oneDNN's sgemm.
///
/// OpenBLAS runs single-threaded here and large GEMMs are split over cores by
/// `Parallel`. OpenBLAS's own worker threads spin (sched_yield) for a long while after
/// each call; on two cores that took about a fifth of the CPU from the kernels that run
/// between GEMMs (see BENCHMARKS.md), while a split GEMM runs as fast.
public enum BLAS {
    private static let singleThreaded: Void = { openblas_set_num_threads(1) }()

    /// bf16 mixed precision for `gemm`, as PyTorch's CPU autocast: operands rounded to
    /// bfloat16, sums in float32 (`BF16GEMM`), on CPUs with AVX512-BF16 only (elsewhere it
    /// would be slower than sgemm, so `gemm` stays float32 there). Off by default: set it for
    /// a whole run (`Precision`), not around single ops.
    nonisolated(unsafe) public static var mixedPrecision = false

    /// The library that runs float32 GEMMs. oneDNN's sgemm, where Debian's libdnnl is there
    /// (opened at run time, onednn.c), ran the GEMM shapes of the embedded model's training
    /// step and sampling faster than OpenBLAS's on one thread, but for the operand strides
    /// `oneDNNReadsWell` leaves to OpenBLAS (BENCHMARKS.md, "float32 GEMMs"). OpenBLAS runs
    /// them all without oneDNN, and always the float64 solves and `referenceGEMM`.
    public enum Engine: String, Sendable {
        case oneDNN = "onednn"
        case openBLAS = "openblas"
    }

    /// The engine float32 GEMMs ask for first (falling back to OpenBLAS when it is missing).
    nonisolated(unsafe) public static var engine = Engine.oneDNN

    /// The engine float32 GEMMs run on here.
    public static var activeEngine: Engine {
        engine == .oneDNN && duo_onednn_available() != 0 ? .oneDNN : .openBLAS
    }

    /// Whether oneDNN's sgemm runs a GEMM with these operands well. It reads a non-transposed
    /// B, and a transposed A, down their columns in place; at a row stride that is a multiple
    /// of 256 floats from 512 on, those reads fall into a few cache sets and it ran at half
    /// OpenBLAS's speed or less (BENCHMARKS.md, "float32 GEMMs"). OpenBLAS packs its operands
    /// first and takes those GEMMs. A rule of the shapes alone, so a run's numbers never
    /// depend on timings.
    static func oneDNNReadsWell(transA: Bool, transB: Bool, lda: Int, ldb: Int) -> Bool {
        func setAligned(_ stride: Int) -> Bool { stride >= 512 && stride % 256 == 0 }
        return !(transA && setAligned(lda)) && !(!transB && setAligned(ldb))
    }

    /// The row stride for a matrix of `columns` floats per row that a GEMM reads as its
    /// B operand, for buffers laid out for GEMMs (Winograd's transformed tiles, im2col's
    /// columns): 16 floats past the row where the row is a multiple of 64 floats from 128 on.
    /// oneDNN reads B down its columns, and at those strides a column's floats share few cache
    /// sets: padded, it ran those GEMMs faster than OpenBLAS (which packs B first) instead of
    /// slower (BENCHMARKS.md, "Padded strides"). The padding is never read.
    public static func paddedRowStride(_ columns: Int) -> Int {
        columns >= 128 && columns % 64 == 0 ? columns + 16 : columns
    }

    /// GEMMs smaller than this (multiply-adds) stay float32 in mixed precision: packing
    /// costs more than the bf16 tile saves.
    static let mixedPrecisionMinimum = 1 << 18

    /// C = alpha * op(A) * op(B) + beta * C for row-major matrices, op(X) = X or X^T.
    /// op(A) is [m, k], op(B) is [k, n], C is [m, n].
    public static func gemm(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        _ = singleThreaded
        guard m > 0, n > 0 else { return }
        guard k > 0 else {
            // C = beta * C (BLAS may skip the scaling when k = 0).
            for row in 0..<m { for j in 0..<n { c[row * ldc + j] *= beta } }
            return
        }
        if mixedPrecision, BF16GEMM.isNative, m * n * k >= mixedPrecisionMinimum {
            return BF16GEMM.gemm(
                transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        }
        splitOverCores(
            transA: transA, transB: transB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb,
            c: c, ldc: ldc
        ) { m, n, a, b, c in
            call(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        }
    }

    /// Runs `part(m, n, a, b, c)` on panels of C over `Parallel`'s workers: the wider of
    /// C's two dimensions is cut into column or row panels, with the operands' pointers
    /// moved to each panel's rows of op(A) or columns of op(B).
    static func splitOverCores(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int,
        _ part: (Int, Int, UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>)
            -> Void
    ) {
        let splitColumns = n >= m
        let parts = splitColumns ? n : m
        Parallel.forEach(parts, costPerItem: 2 * k * (splitColumns ? m : n)) { r in
            let (lo, count) = (r.lowerBound, r.count)
            if splitColumns {
                part(m, count, a, b + (transB ? lo * ldb : lo), c + lo)
            } else {
                part(count, n, a + (transA ? lo : lo * lda), b, c + lo * ldc)
            }
        }
    }

    /// One float32 GEMM (beta 0) on `engine` alone, on the calling thread, whatever the
    /// operands' strides: for benchmarks that compare the engines shape by shape.
    public static func engineGEMM(
        _ engine: Engine, transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        _ = singleThreaded
        if engine == .oneDNN,
            duo_onednn_sgemm(
                transA ? 1 : 0, transB ? 1 : 0, m, n, k, 1, a, lda, b, ldb, 0, c, ldc) != 0
        {
            return
        }
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), 1, a, Int32(lda), b, Int32(ldb), 0, c, Int32(ldc))
    }

    /// One OpenBLAS call with OpenBLAS's own threading over `threads` threads: the
    /// reference that `make bench` compares the core against.
    public static func referenceGEMM(
        threads: Int, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
        c: UnsafeMutablePointer<Float>
    ) {
        _ = singleThreaded
        openblas_set_num_threads(Int32(threads))
        call(false, false, m, n, k, 1, a, k, b, n, 0, c, n)
        openblas_set_num_threads(1)
    }

    // MARK: float64, for closed-form solves (UCE's edit) that float32 would round visibly

    /// C = alpha * op(A) * op(B) + beta * C in float64, row-major, one OpenBLAS call.
    public static func dgemm(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
        alpha: Double = 1, a: UnsafePointer<Double>, lda: Int,
        b: UnsafePointer<Double>, ldb: Int,
        beta: Double = 0, c: UnsafeMutablePointer<Double>, ldc: Int
    ) {
        _ = singleThreaded
        guard m > 0, n > 0, k > 0 else {
            for row in 0..<m { for j in 0..<n { c[row * ldc + j] *= beta } }
            return
        }
        cblas_dgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// y = alpha * A x + beta * y in float64: A is [m, n] row-major with row stride `lda`,
    /// x and y strided by `incX` and `incY`.
    public static func dgemv(
        m: Int, n: Int, alpha: Double, a: UnsafePointer<Double>, lda: Int,
        x: UnsafePointer<Double>, incX: Int, beta: Double, y: UnsafeMutablePointer<Double>,
        incY: Int
    ) {
        _ = singleThreaded
        guard m > 0, n > 0 else { return }
        cblas_dgemv(
            CblasRowMajor, CblasNoTrans, Int32(m), Int32(n), alpha, a, Int32(lda), x,
            Int32(incX), beta, y, Int32(incY))
    }

    /// B ← B op(L)⁻¹ in float64 for a lower-triangular [n, n] L (row-major) and an [m, n] B:
    /// solves X op(L) = B on the right, op(L) = L or Lᵀ.
    public static func dtrsmRightLower(
        transposed: Bool, m: Int, n: Int, l: UnsafePointer<Double>, ldl: Int,
        b: UnsafeMutablePointer<Double>, ldb: Int
    ) {
        _ = singleThreaded
        guard m > 0, n > 0 else { return }
        cblas_dtrsm(
            CblasRowMajor, CblasRight, CblasLower, transposed ? CblasTrans : CblasNoTrans,
            CblasNonUnit, Int32(m), Int32(n), 1, l, Int32(ldl), b, Int32(ldb))
    }

    private static func call(
        _ transA: Bool, _ transB: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
        _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
        _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int
    ) {
        if engine == .oneDNN, oneDNNReadsWell(transA: transA, transB: transB, lda: lda, ldb: ldb),
            duo_onednn_sgemm(
                transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) != 0
        {
            return
        }
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}
