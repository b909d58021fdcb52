import Diffusion
import Formats
import Foundation
import Tensor

/// Ring-A-Bell (Tsai et al., ICLR 2024): prompts that bring a concept back without
/// naming it, found from the text encoder alone (so they transfer to any unlearned UNet).
///
/// The concept direction c is the mean difference of text-encoder embeddings (the whole
/// last hidden state) of prompts with and without the concept. For a prompt p with the
/// concept, the target is E(p) + η c; a genetic algorithm over sequences of K word tokens,
/// the concept's own words and synonyms excluded from its vocabulary, minimizes
/// ‖E(tokens) − target‖². As the authors' code: keep the better half, single-point
/// crossover with probability 0.5 (two children), mutate one position with probability 0.25.
public struct RingABell {
    public struct Settings: Hashable, Sendable {
        /// Tokens per prompt (Ring-A-Bell's K 16).
        public var length = 16
        /// Ring-A-Bell's η (its `cof`) 3.
        public var eta: Float = 3
        public var population = 200
        /// Ring-A-Bell runs 3000 generations; the world's small vocabulary converges sooner.
        public var generations = 3000
        public var crossoverRate = 0.5
        public var mutationRate = 0.25
        public var seed: UInt64 = 0

        public init() {}
    }

    public let model: StableDiffusion
    public let settings: Settings
    /// Token ids the search may use.
    public let vocabulary: [Int]
    let direction: Tensor

    /// `withConcept[i]` and `withoutConcept[i]` are a prompt with and without the concept;
    /// `forbidden` words (the concept's words and synonyms) never appear in a found prompt.
    public init(
        model: StableDiffusion, withConcept: [String], withoutConcept: [String],
        forbidden: [String],
        settings: Settings
    ) throws {
        guard !withConcept.isEmpty, withConcept.count == withoutConcept.count else {
            throw AttackError("Ring-A-Bell needs pairs of prompts with and without the concept")
        }
        // The parents' and the children's token ids (their encodings go 256 at a time).
        try MemoryEstimate.check(
            Double(settings.population) * Double(min(settings.length, model.tokenizer.maxLength))
                * 8 * 2,
            what:
                "a Ring-A-Bell population of \(settings.population) sequences of \(settings.length) tokens"
        )
        self.model = model
        self.settings = settings
        vocabulary = AttackVocabulary.tokenIDs(model.tokenizer, forbidden: forbidden)
        guard vocabulary.count >= 2 else {
            throw AttackError("the tokenizer leaves fewer than 2 words to search")
        }
        let difference = GradMode.withNoGrad {
            model.encode(withConcept) - model.encode(withoutConcept)
        }
        // [1, S, D]
        direction = GradMode.withNoGrad { mean(difference, axes: [0], keepDims: true) }
    }

    /// A prompt for `target` (a prompt with the concept): the best sequence after the last
    /// generation, as text. `progress(generation, bestDistance)`.
    public func attack(
        _ target: String, index: UInt64, progress: (Int, Float) -> Void = { _, _ in }
    ) -> (prompt: String, distance: Float) {
        let goal = GradMode.withNoGrad { model.encode([target]) + direction * settings.eta }
        let key = RandomKey(seed: settings.seed).fold(in: index).fold(in: 0x5249_4E47)  // "RING"
        var random = SplitMix(seed: UInt64(key.k0) << 32 | UInt64(key.k1))
        let k = min(settings.length, model.tokenizer.maxLength - 2)
        var population = (0..<settings.population).map { _ in
            (0..<k).map { _ in vocabulary[random.next(below: vocabulary.count)] }
        }
        var scores = fitness(population, goal)
        for generation in 0..<settings.generations {
            let order = population.indices.sorted { (scores[$0], $0) < (scores[$1], $1) }
            let parents = order.prefix(settings.population / 2).map { population[$0] }
            let parentScores = order.prefix(settings.population / 2).map { scores[$0] }
            progress(generation + 1, parentScores[0])
            if generation == settings.generations - 1 {
                return (decode(parents[0]), parentScores[0])
            }
            var children: [[Int]] = []
            for parent in parents where random.nextUnit() < settings.crossoverRate {
                let other = parents[random.next(below: parents.count)]
                let point = 1 + random.next(below: k)
                children.append(Array(parent[..<point] + other[point...]))
                children.append(Array(other[..<point] + parent[point...]))
            }
            // Parents keep their places (the authors mutate them too, but keep the better
            // half first, so the best found is never lost): mutation hits the children.
            for i in children.indices where random.nextUnit() < settings.mutationRate {
                children[i][random.next(below: k)] =
                    vocabulary[random.next(below: vocabulary.count)]
            }
            population = parents + children
            scores = parentScores + fitness(children, goal)
        }
        return (decode(population[0]), scores[0])
    }

    /// ‖E(tokens) − goal‖² over the whole last hidden state, for each sequence.
    func fitness(_ sequences: [[Int]], _ goal: Tensor) -> [Float] {
        guard !sequences.isEmpty else { return [] }
        let t = model.tokenizer
        var scores: [Float] = []
        for start in stride(from: 0, to: sequences.count, by: 256) {
            let chunk = sequences[start..<min(sequences.count, start + 256)]
            let ids = chunk.map { tokens in
                [t.bosTokenID] + tokens + [t.eosTokenID]
                    + Array(repeating: t.padTokenID, count: t.maxLength - tokens.count - 2)
            }
            let states = GradMode.withNoGrad { model.textEncoder(ids) }  // [n, S, D]
            let n = chunk.count, size = states.count / n
            let values = states.scalars, target = goal.scalars
            for i in 0..<n {
                var sum: Float = 0
                for j in 0..<size {
                    let d = values[i * size + j] - target[j]
                    sum += d * d
                }
                scores.append(sum)
            }
        }
        return scores
    }

    func decode(_ tokens: [Int]) -> String { model.tokenizer.decode(tokens) }
}

/// A deterministic generator for the search (SplitMix64).
struct SplitMix {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func nextUInt64() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func next(below n: Int) -> Int { Int(nextUInt64() % UInt64(n)) }

    mutating func nextUnit() -> Double { Double(nextUInt64() >> 11) / Double(1 << 53) }
}

/// An attack that cannot run, in one line.
public typealias AttackError = OneLineError
