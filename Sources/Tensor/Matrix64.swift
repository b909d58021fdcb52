/// A dense float64 matrix, row-major: the few products and the symmetric solve of a
/// closed-form edit (UCE), where float32 would round a badly conditioned system visibly.
/// Not part of autodiff.
public struct Matrix64: Hashable, Sendable {
    public let rows: Int
    public let columns: Int
    /// Row-major values, `rows * columns` of them.
    public var scalars: [Double]

    public init(rows: Int, columns: Int, scalars: [Double]) {
        precondition(
            scalars.count == rows * columns,
            "Matrix64: \(scalars.count) values for \(rows)x\(columns)")
        self.rows = rows
        self.columns = columns
        self.scalars = scalars
    }

    /// A rank-2 tensor [rows, columns], widened.
    public init(_ tensor: Tensor) {
        precondition(tensor.rank == 2, "Matrix64 from a tensor of shape \(tensor.shape)")
        self.init(
            rows: tensor.shape[0], columns: tensor.shape[1],
            scalars: tensor.scalars.map(Double.init))
    }

    /// s · I of size n.
    public static func identity(_ n: Int, scale: Double = 1) -> Matrix64 {
        var m = Matrix64(rows: n, columns: n, scalars: Array(repeating: 0, count: n * n))
        for i in 0..<n { m.scalars[i * n + i] = scale }
        return m
    }

    /// The values rounded to float32, as a tensor [rows, columns].
    public var tensor: Tensor { Tensor(scalars.map(Float.init), shape: [rows, columns]) }

    /// The rows `range` of the matrix.
    public func rows(_ range: Range<Int>) -> Matrix64 {
        Matrix64(
            rows: range.count, columns: columns,
            scalars: Array(scalars[(range.lowerBound * columns)..<(range.upperBound * columns)]))
    }

    /// sqrt(Σ x²).
    public var frobeniusNorm: Double { scalars.reduce(0) { $0 + $1 * $1 }.squareRoot() }

    /// op(a) · op(b), op(x) = x or xᵀ.
    public static func product(
        _ a: Matrix64, _ b: Matrix64, transposeA transA: Bool = false,
        transposeB transB: Bool = false
    ) -> Matrix64 {
        let (m, k) = transA ? (a.columns, a.rows) : (a.rows, a.columns)
        let (kb, n) = transB ? (b.columns, b.rows) : (b.rows, b.columns)
        precondition(k == kb, "Matrix64 product: \(m)x\(k) times \(kb)x\(n)")
        var c = Matrix64(rows: m, columns: n, scalars: Array(repeating: 0, count: m * n))
        a.scalars.withUnsafeBufferPointer { pa in
            b.scalars.withUnsafeBufferPointer { pb in
                c.scalars.withUnsafeMutableBufferPointer { pc in
                    BLAS.dgemm(
                        transA: transA, transB: transB, m: m, n: n, k: k,
                        a: pa.baseAddress!, lda: a.columns, b: pb.baseAddress!, ldb: b.columns,
                        c: pc.baseAddress!, ldc: n)
                }
            }
        }
        return c
    }

    /// self + s · other (same shape).
    public func adding(_ other: Matrix64, scaled s: Double = 1) -> Matrix64 {
        precondition(rows == other.rows && columns == other.columns, "Matrix64 sum of other shapes")
        var sum = self
        for i in sum.scalars.indices { sum.scalars[i] += s * other.scalars[i] }
        return sum
    }

    /// self · s.
    public func scaled(_ s: Double) -> Matrix64 {
        Matrix64(rows: rows, columns: columns, scalars: scalars.map { $0 * s })
    }
}

/// A symmetric matrix that is not positive definite, at the pivot where it showed.
public struct NotPositiveDefinite: Error, CustomStringConvertible {
    public let pivot: Int
    public var description: String {
        "the matrix is not positive definite (pivot \(pivot) is not above zero)"
    }
}

extension Matrix64 {
    /// The lower-triangular L with L Lᵀ = self (Cholesky), column by column:
    /// L[j, j] = sqrt(A[j, j] − Σₖ L[j, k]²), L[i, j] = (A[i, j] − Σₖ L[i, k] L[j, k]) / L[j, j].
    public func cholesky() throws -> Matrix64 {
        precondition(rows == columns, "Cholesky of a \(rows)x\(columns) matrix")
        let n = rows
        var l = Matrix64(rows: n, columns: n, scalars: Array(repeating: 0, count: n * n))
        for j in 0..<n {
            try l.scalars.withUnsafeMutableBufferPointer { pl in
                let base = pl.baseAddress!
                var pivot = scalars[j * n + j]
                for k in 0..<j { pivot -= base[j * n + k] * base[j * n + k] }
                guard pivot > 0, pivot.isFinite else { throw NotPositiveDefinite(pivot: j) }
                let diagonal = pivot.squareRoot()
                base[j * n + j] = diagonal
                guard j + 1 < n else { return }
                // Column j below the diagonal: A[j+1..., j] − L[j+1..., ..<j] · L[j, ..<j].
                for i in (j + 1)..<n { base[i * n + j] = scalars[i * n + j] }
                BLAS.dgemv(
                    m: n - j - 1, n: j, alpha: -1, a: base + (j + 1) * n, lda: n,
                    x: base + j * n, incX: 1, beta: 1, y: base + (j + 1) * n + j, incY: n)
                for i in (j + 1)..<n { base[i * n + j] /= diagonal }
            }
        }
        return l
    }

    /// X with X · A = self, for the symmetric positive definite A whose Cholesky factor
    /// is `factor` (A = L Lᵀ): two triangular solves, no inverse formed.
    public func solvingRight(cholesky factor: Matrix64) -> Matrix64 {
        precondition(factor.rows == columns && factor.columns == columns, "solve: shapes differ")
        var x = self
        factor.scalars.withUnsafeBufferPointer { pl in
            x.scalars.withUnsafeMutableBufferPointer { px in
                // X A = B with A = L Lᵀ: (X L) Lᵀ = B, so Y = B L⁻ᵀ, then X = Y L⁻¹.
                BLAS.dtrsmRightLower(
                    transposed: true, m: rows, n: columns, l: pl.baseAddress!, ldl: columns,
                    b: px.baseAddress!, ldb: columns)
                BLAS.dtrsmRightLower(
                    transposed: false, m: rows, n: columns, l: pl.baseAddress!, ldl: columns,
                    b: px.baseAddress!, ldb: columns)
            }
        }
        return x
    }
}
