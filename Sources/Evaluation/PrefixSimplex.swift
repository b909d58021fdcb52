import Foundation
import Tensor

/// UnlearnDiffAtk's relaxed prefix (OPTML-Group/Diffusion-MU-Attack, `text_grad_.py`): one
/// probability vector over the vocabulary per prefix position, starting uniform (l.68–76).
/// A step draws one token per position from its vector (l.211, 240–249); the loss's gradient
/// with respect to the drawn one-hot rows reaches the vectors straight through the draw,
/// clipped to [−1, 1] (l.252–255); Adam with coupled L2 weight decay moves them (l.78–79,
/// 217–218) and each is projected back onto the probability simplex (l.59–66, 219–220).
final class PrefixSimplex {
    /// The vectors: [k, V], each row non-negative and summing to 1.
    let probabilities: Tensor
    let optimizer: AdamW

    /// Uniform vectors over `size` tokens at `positions` positions (the reference's
    /// `rand_init` is off in every config).
    init(positions: Int, size: Int) {
        precondition(positions >= 1 && size >= 1, "a prefix needs positions and tokens")
        probabilities = Tensor(
            [Float](repeating: 1 / Float(size), count: positions * size), shape: [positions, size])
        // Decay is added to the gradient by hand (torch.optim.Adam's coupled L2), not
        // decoupled as AdamW's.
        optimizer = AdamW(parameters: [probabilities], options: .init(weightDecay: 0))
    }

    var positions: Int { probabilities.shape[0] }
    var size: Int { probabilities.shape[1] }

    /// One token index per position, drawn from its vector (torch.multinomial's draw, by
    /// inverse CDF from `key`'s uniforms: a token of probability 0 is never drawn).
    func draw(key: RandomKey) -> [Int] {
        let uniforms = key.uniform(count: positions)
        let values = probabilities.scalars
        return (0..<positions).map { row in
            let p = values[(row * size)..<((row + 1) * size)]
            let goal = Double(uniforms[row]) * p.reduce(0.0) { $0 + Double($1) }
            var total = 0.0
            var last = p.startIndex
            for i in p.indices where p[i] > 0 {
                total += Double(p[i])
                last = i
                if total > goal { break }
            }
            return last - p.startIndex
        }
    }

    /// One-hot rows [k, V] of `draws`: what the prefix's embeddings are made from.
    func oneHot(_ draws: [Int]) -> Tensor {
        precondition(draws.count == positions && draws.allSatisfy { (0..<size).contains($0) })
        var values = [Float](repeating: 0, count: positions * size)
        for (row, index) in draws.enumerated() { values[row * size + index] = 1 }
        return Tensor(values, shape: [positions, size])
    }

    /// The straight-through gradient for the vectors from the loss's gradient with respect
    /// to the one-hot rows: clipped to [−1, 1] (the reference's `hardtanh`).
    static func straightThrough(_ oneHotGradient: [Float]) -> [Float] {
        oneHotGradient.map { min(max($0, -1), 1) }
    }

    /// Adam's step on the straight-through gradient, then each vector's projection onto
    /// the simplex.
    func update(oneHotGradient: Tensor, learningRate: Float, weightDecay: Float) {
        step(oneHotGradient: oneHotGradient, learningRate: learningRate, weightDecay: weightDecay)
        project()
    }

    /// Adam's step on the straight-through gradient plus `weightDecay` × the vectors
    /// (torch.optim.Adam's weight decay, coupled; AdamW's is not).
    func step(oneHotGradient: Tensor, learningRate: Float, weightDecay: Float) {
        precondition(oneHotGradient.shape == probabilities.shape, "gradient of the one-hot rows")
        let gradient = zip(Self.straightThrough(oneHotGradient.scalars), probabilities.scalars)
            .map { $0 + weightDecay * $1 }
        optimizer.update(
            learningRate: learningRate, gradients: [Tensor(gradient, shape: probabilities.shape)])
    }

    /// Each vector replaced by its projection onto the simplex.
    func project() {
        let moved = probabilities.scalars
        let projected = (0..<positions).flatMap { row in
            Self.projected(moved[(row * size)..<((row + 1) * size)])
        }
        probabilities.assign(Tensor(projected, shape: probabilities.shape))
    }

    /// Each position's most likely token: the discrete prefix (`argmax_project`, l.164–171).
    /// A tie goes to the first, as torch.argmax.
    var mostLikely: [Int] {
        let values = probabilities.scalars
        return (0..<positions).map { row in
            let p = values[(row * size)..<((row + 1) * size)]
            var best = p.startIndex
            for i in p.indices where p[i] > p[best] { best = i }
            return best - p.startIndex
        }
    }

    /// The Euclidean projection of `v` onto the probability simplex {x ≥ 0, Σx = 1}:
    /// x = max(v − θ, 0) with θ from the sorted values (Held, Wolfe & Crowder 1974; Duchi
    /// et al. 2008, Fig. 1). The reference finds θ by bisection to 1e-5 (`bisection`,
    /// l.20–56; its upper bound 1 holds by itself on the simplex); this is the exact θ.
    static func projected(_ v: ArraySlice<Float>) -> [Float] {
        precondition(!v.isEmpty, "an empty vector has no projection")
        let sorted = v.map(Double.init).sorted(by: >)
        var total = 0.0
        var theta = 0.0
        for (j, value) in sorted.enumerated() {
            total += value
            let candidate = (total - 1) / Double(j + 1)
            // The largest j with value − θ_j > 0 gives θ; the condition holds on a prefix.
            if value - candidate > 0 { theta = candidate } else { break }
        }
        return v.map { Float(max(Double($0) - theta, 0)) }
    }
}
