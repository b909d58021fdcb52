import Tensor

/// The mean and covariance of a set of feature vectors: the Gaussian that FID fits.
public struct FeatureStatistics: Sendable {
    /// Feature dimension d.
    public let dimension: Int
    /// [d]
    public let mean: [Double]
    /// [d, d] row-major, unbiased (divided by n - 1, as numpy's np.cov).
    public let covariance: [Double]

    /// Statistics of the rows of `features` ([n, d], n >= 2), accumulated in Double.
    public init(features: Tensor) {
        precondition(
            features.rank == 2 && features.shape[0] >= 2,
            "features \(features.shape), need [n >= 2, d]")
        let (n, d) = (features.shape[0], features.shape[1])
        let x = features.scalars.map(Double.init)
        var mean = [Double](repeating: 0, count: d)
        for row in 0..<n { for j in 0..<d { mean[j] += x[row * d + j] } }
        mean = mean.map { $0 / Double(n) }
        var covariance = [Double](repeating: 0, count: d * d)
        for row in 0..<n {
            let centred = (0..<d).map { x[row * d + $0] - mean[$0] }
            for i in 0..<d { for j in i..<d { covariance[i * d + j] += centred[i] * centred[j] } }
        }
        for i in 0..<d {
            for j in i..<d {
                covariance[i * d + j] /= Double(n - 1)
                covariance[j * d + i] = covariance[i * d + j]
            }
        }
        self.init(mean: mean, covariance: covariance)
    }

    /// Statistics given directly (covariance [d, d] row-major, symmetric).
    public init(mean: [Double], covariance: [Double]) {
        precondition(covariance.count == mean.count * mean.count, "covariance must be [d, d]")
        self.dimension = mean.count
        self.mean = mean
        self.covariance = covariance
    }
}

/// The Fréchet distance between two Gaussians (Heusel et al. 2017, eq. 6; Dowson and
/// Landau 1982): the FID when the statistics are of an image network's features.
public enum FrechetDistance {
    /// d² = |μ1 − μ2|² + tr(Σ1 + Σ2 − 2 (Σ1 Σ2)^{1/2}).
    ///
    /// (Σ1 Σ2)^{1/2} is not symmetric, but it is similar to the symmetric positive
    /// semi-definite (Σ1^{1/2} Σ2 Σ1^{1/2})^{1/2}, so their traces agree; that form needs
    /// only symmetric eigendecompositions, which are exact and stable (Jacobi), where a
    /// general matrix square root (scipy's sqrtm) may return complex round-off.
    public static func distance(_ a: FeatureStatistics, _ b: FeatureStatistics) -> Double {
        precondition(a.dimension == b.dimension, "dimensions \(a.dimension) vs \(b.dimension)")
        let d = a.dimension
        let meanTerm = zip(a.mean, b.mean).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
        let trace = { (m: [Double]) in (0..<d).reduce(0) { $0 + m[$1 * d + $1] } }
        let rootA = SymmetricEigen(a.covariance, dimension: d).squareRoot()
        let middle = multiply(multiply(rootA, b.covariance, d), rootA, d)
        // Round-off can leave tiny negative eigenvalues of a PSD matrix: clamp them.
        let crossTrace = SymmetricEigen(middle, dimension: d).values.reduce(0) {
            $0 + max($1, 0).squareRoot()
        }
        return meanTerm + trace(a.covariance) + trace(b.covariance) - 2 * crossTrace
    }

    /// The distance between the Gaussians fitted to the rows of x [n1, d] and y [n2, d]
    /// (n1, n2 >= 2). With fewer samples than dimensions (100 images in CLIP's 768) the
    /// covariances have rank below d and the distance is computed from the samples
    /// instead (`sampleDistance`): the same number, at a cost in n, not d.
    public static func distance(features x: Tensor, _ y: Tensor) -> Double {
        precondition(
            x.rank == 2 && y.rank == 2 && x.shape[1] == y.shape[1],
            "features \(x.shape) and \(y.shape), need [n, d] and [m, d]")
        guard min(x.shape[0], y.shape[0]) < x.shape[1] else {
            return distance(FeatureStatistics(features: x), FeatureStatistics(features: y))
        }
        return sampleDistance(x, y)
    }

    /// With X, Y the centred samples, Σ1 = XᵀX / (n1 − 1) and Σ2 = YᵀY / (n2 − 1). The
    /// non-zero eigenvalues of Σ1 Σ2 are those of M Mᵀ / ((n1 − 1)(n2 − 1)) with
    /// M = X Yᵀ [n1, n2] (AB and BA share them), so tr (Σ1 Σ2)^{1/2} is the sum of M's
    /// singular values over √((n1 − 1)(n2 − 1)): one eigendecomposition of the smaller
    /// Gram matrix, and tr Σ is the centred samples' sum of squares over n − 1.
    static func sampleDistance(_ x: Tensor, _ y: Tensor) -> Double {
        let d = x.shape[1]
        let (a, meanA) = centred(x), (b, meanB) = centred(y)
        let (n1, n2) = (a.count / d, b.count / d)
        let meanTerm = zip(meanA, meanB).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
        let traceA = a.reduce(0) { $0 + $1 * $1 } / Double(n1 - 1)
        let traceB = b.reduce(0) { $0 + $1 * $1 } / Double(n2 - 1)
        // M = X Yᵀ, then the Gram matrix of its shorter side.
        let m = product(a, rows: n1, b, rows: n2, width: d)
        let (small, large) = (min(n1, n2), max(n1, n2))
        let rows = n1 <= n2 ? m : transposed(m, rows: n1, columns: n2)
        let gram = product(rows, rows: small, rows, rows: small, width: large)
        let singularSum = SymmetricEigen(gram, dimension: small).values.reduce(0) {
            $0 + max($1, 0).squareRoot()
        }
        let crossTrace = singularSum / (Double(n1 - 1) * Double(n2 - 1)).squareRoot()
        return meanTerm + traceA + traceB - 2 * crossTrace
    }

    /// The rows of x [n, d] minus their mean, in Double, and the mean.
    static func centred(_ x: Tensor) -> (values: [Double], mean: [Double]) {
        let (n, d) = (x.shape[0], x.shape[1])
        precondition(n >= 2, "features \(x.shape), need n >= 2")
        var values = x.scalars.map(Double.init)
        var mean = [Double](repeating: 0, count: d)
        for row in 0..<n { for j in 0..<d { mean[j] += values[row * d + j] } }
        mean = mean.map { $0 / Double(n) }
        for row in 0..<n { for j in 0..<d { values[row * d + j] -= mean[j] } }
        return (values, mean)
    }

    /// P Qᵀ for row-major P [p, width] and Q [q, width] -> [p, q].
    static func product(_ p: [Double], rows: Int, _ q: [Double], rows qRows: Int, width: Int)
        -> [Double]
    {
        var out = [Double](repeating: 0, count: rows * qRows)
        for i in 0..<rows {
            for j in 0..<qRows {
                var total = 0.0
                for k in 0..<width { total += p[i * width + k] * q[j * width + k] }
                out[i * qRows + j] = total
            }
        }
        return out
    }

    static func transposed(_ m: [Double], rows: Int, columns: Int) -> [Double] {
        var out = [Double](repeating: 0, count: m.count)
        for i in 0..<rows { for j in 0..<columns { out[j * rows + i] = m[i * columns + j] } }
        return out
    }
}

/// C = A B for row-major d x d matrices.
func multiply(_ a: [Double], _ b: [Double], _ d: Int) -> [Double] {
    var c = [Double](repeating: 0, count: d * d)
    for i in 0..<d {
        for k in 0..<d where a[i * d + k] != 0 {
            let aik = a[i * d + k]
            for j in 0..<d { c[i * d + j] += aik * b[k * d + j] }
        }
    }
    return c
}

/// The eigendecomposition A = V diag(λ) Vᵀ of a symmetric matrix by cyclic Jacobi
/// rotations (Golub and Van Loan, §8.5): each rotation zeroes one off-diagonal pair, and
/// sweeps repeat until the off-diagonal mass is negligible.
struct SymmetricEigen {
    /// λ, in no particular order.
    let values: [Double]
    /// V, row-major; column j is the eigenvector of values[j].
    let vectors: [Double]
    let dimension: Int

    init(_ matrix: [Double], dimension d: Int, maxSweeps: Int = 100) {
        precondition(matrix.count == d * d, "\(matrix.count) values for a \(d)x\(d) matrix")
        var a = matrix
        var v = [Double](repeating: 0, count: d * d)
        for i in 0..<d { v[i * d + i] = 1 }
        let scale = a.reduce(0) { $0 + $1 * $1 }
        for _ in 0..<maxSweeps {
            var offDiagonal = 0.0
            for p in 0..<d { for q in (p + 1)..<d { offDiagonal += a[p * d + q] * a[p * d + q] } }
            if offDiagonal <= 1e-30 * scale || offDiagonal == 0 { break }
            for p in 0..<d {
                for q in (p + 1)..<d where a[p * d + q] != 0 {
                    Self.rotate(&a, &v, d, p, q)
                }
            }
        }
        values = (0..<d).map { a[$0 * d + $0] }
        vectors = v
        dimension = d
    }

    /// Applies the rotation P that zeroes a[p, q]: A ← Pᵀ A P, V ← V P. With
    /// θ = (a_qq − a_pp) / 2a_pq, t = tan φ is the smaller root of t² + 2θt − 1 = 0.
    private static func rotate(
        _ a: inout [Double], _ v: inout [Double], _ d: Int, _ p: Int, _ q: Int
    ) {
        let theta = (a[q * d + q] - a[p * d + p]) / (2 * a[p * d + q])
        let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
        let c = 1 / (t * t + 1).squareRoot()
        let s = t * c
        for k in 0..<d {  // columns p and q: A P
            let (akp, akq) = (a[k * d + p], a[k * d + q])
            a[k * d + p] = c * akp - s * akq
            a[k * d + q] = s * akp + c * akq
            let (vkp, vkq) = (v[k * d + p], v[k * d + q])
            v[k * d + p] = c * vkp - s * vkq
            v[k * d + q] = s * vkp + c * vkq
        }
        for k in 0..<d {  // rows p and q: Pᵀ (A P)
            let (apk, aqk) = (a[p * d + k], a[q * d + k])
            a[p * d + k] = c * apk - s * aqk
            a[q * d + k] = s * apk + c * aqk
        }
    }

    /// V diag(√max(λ, 0)) Vᵀ: the PSD square root (negative round-off clamped to 0).
    func squareRoot() -> [Double] {
        let d = dimension
        let roots = values.map { max($0, 0).squareRoot() }
        var out = [Double](repeating: 0, count: d * d)
        for i in 0..<d {
            for j in i..<d {
                var total = 0.0
                for k in 0..<d { total += vectors[i * d + k] * roots[k] * vectors[j * d + k] }
                out[i * d + j] = total
                out[j * d + i] = total
            }
        }
        return out
    }
}
