import Tensor

/// The random draws of textual inversion's training, in the places diffusers' script makes
/// them (`examples/textual_inversion/textual_inversion.py` at 58eb52c): the DataLoader's
/// shuffled order each epoch (`shuffle=True`, l.760–762), each example's template
/// (`random.choice`, l.558) and horizontal flip (`RandomHorizontalFlip(p=flip_p)`, l.545,
/// 585), and each micro-batch's posterior sample (`latent_dist.sample()`, l.874), noise
/// (`torch.randn_like`, l.878) and timesteps (`torch.randint(0, num_train_timesteps)`,
/// l.881). A test replays another library's draws through it.
public protocol TextualInversionDraws {
    /// The order of the dataset's `count` examples in `epoch`: a permutation of 0..<count.
    mutating func order(epoch: Int, count: Int) -> [Int]
    /// Micro-batch `index`'s draws (counted over the whole run) for `examples` examples.
    mutating func microBatch(index: Int, shape: MicroBatchShape) -> MicroBatchDraws
}

/// What a micro-batch's draws are made for.
public struct MicroBatchShape: Sendable {
    /// Examples in the micro-batch (the last of an epoch may hold fewer).
    public var examples: Int
    /// Templates to choose from; 0 when each image has its own prompt.
    public var templates: Int
    public var flipP: Float
    /// One latent [C, h, w].
    public var latent: [Int]
    public var trainTimesteps: Int
}

/// One micro-batch's draws, one entry (or row) per example.
public struct MicroBatchDraws {
    /// Template indices (empty when each image has its own prompt).
    public var templates: [Int]
    public var flips: [Bool]
    /// The posterior's standard normal draw [B, C, h, w] (unused by a pixel model).
    public var posteriorNoise: Tensor
    /// The diffusion noise [B, C, h, w].
    public var noise: Tensor
    public var timesteps: [Int]

    public init(
        templates: [Int], flips: [Bool], posteriorNoise: Tensor, noise: Tensor, timesteps: [Int]
    ) {
        self.templates = templates
        self.flips = flips
        self.posteriorNoise = posteriorNoise
        self.noise = noise
        self.timesteps = timesteps
    }
}

/// duo's draws, from the attack's seed: each epoch's order and each micro-batch's draws are
/// keyed by their index, so a resumed run draws what the uninterrupted one would have.
public struct SeededInversionDraws: TextualInversionDraws {
    let key: RandomKey

    public init(seed: UInt64) { key = RandomKey(seed: seed).fold(in: 0x4349_4E56) }  // "CINV"

    public mutating func order(epoch: Int, count: Int) -> [Int] {
        var order = Array(0..<count)
        let key = key.fold(in: 0x4550_4F43).fold(in: UInt64(epoch))  // "EPOC"
        var random = SplitMix(seed: UInt64(key.k0) << 32 | UInt64(key.k1))
        // Fisher–Yates, as torch.randperm draws a uniform permutation.
        for i in stride(from: count - 1, to: 0, by: -1) {
            order.swapAt(i, random.next(below: i + 1))
        }
        return order
    }

    public mutating func microBatch(index: Int, shape: MicroBatchShape) -> MicroBatchDraws {
        let key = key.fold(in: UInt64(index))
        let n = shape.examples
        let templates = key.fold(in: 3).uniform(count: shape.templates == 0 ? 0 : n).map {
            min(Int($0 * Float(shape.templates)), shape.templates - 1)
        }
        return MicroBatchDraws(
            templates: templates,
            flips: key.fold(in: 4).uniform(count: n).map { $0 < shape.flipP },
            posteriorNoise: Tensor.randn([n] + shape.latent, key: key.fold(in: 5)),
            noise: Tensor.randn([n] + shape.latent, key: key.fold(in: 1)),
            timesteps: key.fold(in: 2).uniform(count: n).map {
                min(Int($0 * Float(shape.trainTimesteps)), shape.trainTimesteps - 1)
            })
    }
}
