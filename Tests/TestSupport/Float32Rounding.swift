import Tensor

/// Tolerances for comparing float32 results that two evaluations reach by different orders
/// of arithmetic: GEMMs blocked for another batch shape, CPU or OpenBLAS kernel; sums cut
/// into shards or threads; another library. Exact equality holds only where both sides run
/// the same ops on the same shapes; everywhere else the bits depend on the machine.
///
/// Each estimate is a random walk: a float32 sum of n terms rounds n times, by at most ε/2
/// of the running sum each, and roundings of either sign add up to about sqrt(n)·ε/2; two
/// evaluations that round independently differ by about twice that.
public enum Float32Rounding {
    /// ε = 2⁻²³, the gap between 1 and the next float.
    public static let epsilon = Float.ulpOfOne

    /// The relative difference between two orders of a float32 sum of n terms (a dot
    /// product, a reduction): sqrt(n)·ε.
    public static func sum(_ n: Int) -> Float {
        Float(n).squareRoot() * epsilon
    }

    /// The relative difference, per output, between two evaluations of a network whose
    /// layers' sums run in other orders. A layer of fan-in K (input features, or input
    /// channels × kernel area) moves its outputs by sum(K); later layers carry that on at
    /// about its size (normalizations keep the scale), and the layers' roundings add in
    /// quadrature: sqrt(ΣK)·ε over the weights' fan-ins. Counting every weight as one more
    /// layer in sequence makes this an upper estimate.
    public static func network(weights: [Tensor]) -> Float {
        let fanIns = weights.filter { $0.rank >= 2 }.map { $0.count / $0.shape[0] }
        return Float(fanIns.reduce(0, +)).squareRoot() * epsilon
    }

    /// The difference of a mean of n squared residuals r = p − t (a mean squared error of
    /// `mse`) when each prediction p, of RMS `scale`, moves by a relative `relative`:
    /// 2·mean(r·δp), n products of either sign, about 2·sqrt(mse)·relative·scale / sqrt(n).
    public static func meanSquare(_ mse: Float, count n: Int, scale: Float, relative: Float)
        -> Float
    {
        2 * mse.squareRoot() * relative * scale / Float(n).squareRoot()
    }
}
