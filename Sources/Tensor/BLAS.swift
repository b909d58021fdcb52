import CBLAS

/// The bridge to OpenBLAS: the only file that imports CBLAS.
public enum BLAS {
    /// C = alpha * op(A) * op(B) + beta * C for row-major matrices, op(X) = X or X^T.
    /// op(A) is [m, k], op(B) is [k, n], C is [m, n].
    public static func gemm(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
        alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        guard k > 0 else {
            // BLAS leaves C untouched for k = 0 only when beta = 1; make it C *= beta.
            for row in 0..<m { (c + row * ldc).update(repeating: 0, count: n) }
            return
        }
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// The number of threads OpenBLAS uses for one call.
    public static var threadCount: Int {
        get { Int(openblas_get_num_threads()) }
        set { openblas_set_num_threads(Int32(newValue)) }
    }
}
