import Foundation

/// Embedding lookup and the sinusoidal timestep embedding of diffusion models.

/// Rows of `weight` [vocabulary, dim] picked by `indices` -> [indices.count, dim]
/// (reshape the result for batched sequences).
public func embedding(_ indices: [Int], weight: Tensor) -> Tensor {
    precondition(weight.rank == 2, "embedding table must be [vocabulary, dim], got \(weight.shape)")
    let (vocabulary, dim) = (weight.shape[0], weight.shape[1])
    let y = Tensor.empty([indices.count, dim])
    for (row, index) in indices.enumerated() {
        precondition(
            (0..<vocabulary).contains(index), "embedding index \(index) outside 0..<\(vocabulary)")
        (y.pointer + row * dim).update(from: weight.pointer + index * dim, count: dim)
    }
    return y.recorded("embedding", from: [weight]) { dY in
        // Rows used several times receive the sum of their gradients.
        let dWeight = Tensor.zeros([vocabulary, dim])
        for (row, index) in indices.enumerated() {
            let dst = dWeight.pointer + index * dim
            let src = dY.pointer + row * dim
            for i in 0..<dim { dst[i] += src[i] }
        }
        return [dWeight]
    }
}

/// Sinusoidal embeddings of diffusion timesteps [N] -> [N, dim], as diffusers'
/// `get_timestep_embedding` (from DDPM, Ho et al. 2020, after Vaswani et al. 2017):
/// frequency i is maxPeriod^(-i / (half - downscaleFreqShift)); the first half of the
/// features are sines and the second cosines, or the reverse with `flipSinToCos`.
/// The timesteps are data, not parameters: no gradient flows to them.
public func timestepEmbedding(
    _ timesteps: [Float], dim: Int, flipSinToCos: Bool = false, downscaleFreqShift: Float = 1,
    scale: Float = 1, maxPeriod: Float = 10000
) -> Tensor {
    let half = dim / 2
    let y = Tensor.zeros([timesteps.count, dim])  // an odd dim leaves a zero last column
    for (row, t) in timesteps.enumerated() {
        let out = y.pointer + row * dim
        for i in 0..<half {
            // computed in Float, in the same order as diffusers, to match it bit for bit
            let exponent =
                -Foundation.log(maxPeriod) * Float(i) / (Float(half) - downscaleFreqShift)
            let angle = scale * t * Foundation.exp(exponent)
            let (first, second) = flipSinToCos ? (cos(angle), sin(angle)) : (sin(angle), cos(angle))
            out[i] = first
            out[half + i] = second
        }
    }
    return y
}
