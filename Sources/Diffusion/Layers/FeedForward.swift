import Tensor

/// The transformer feed-forward of diffusers with GEGLU (Shazeer 2020, eq. 5):
/// `net.0.proj` maps dim -> 2 * inner, the halves h and g give h * GELU(g), and `net.2`
/// maps inner -> dim.
public final class FeedForward: Layer {
    public let projIn: Linear
    public let projOut: Linear

    public init(dim: Int, multiplier: Int = 4, key: RandomKey?) {
        let keys = key.split(2)
        projIn = Linear(dim, 2 * dim * multiplier, key: keys[0])
        projOut = Linear(dim * multiplier, dim, key: keys[1])
    }

    public var namedParameters: [(String, Tensor)] {
        scoped("net.0.proj", projIn) + scoped("net.2", projOut)
    }

    /// x: [B, T, dim] -> [B, T, dim]
    public func callAsFunction(_ x: Tensor) -> Tensor {
        projOut(geglu(projIn(x)))
    }
}
