import Concepts
import Diffusion
import Formats
import Foundation
import Tensor
import Unlearning

/// Ring-A-Bell (Tsai et al., ICLR 2024): prompts that bring a concept back without
/// naming it, found from the text encoder alone (so they transfer to any unlearned UNet).
///
/// The concept direction c is the mean difference of text-encoder embeddings (the whole
/// last hidden state) of prompts with and without the concept. For a prompt p with the
/// concept, the target is E(p) + η c; a genetic algorithm over sequences of K tokens
/// (`GeneticSearch`, as the authors' notebook runs it) minimizes ‖E(tokens) − target‖².
/// The tokens come from the whole vocabulary, as the authors draw them, or from readable
/// whole words without the concept's own (`AttackTokenSpace`).
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
        /// Ring-A-Bell draws any token id.
        public var tokenSpace = AttackTokenSpace.all
        public var seed: UInt64 = 0

        public init() {}
    }

    /// A found prompt: the text written (the decoded tokens), its distance to the goal,
    /// and whether the text tokenizes back to the tokens searched.
    public struct Found: Sendable {
        public var prompt: String
        public var distance: Float
        public var tokenizesBack: Bool
    }

    public let model: StableDiffusion
    public let settings: Settings
    /// Token ids the search may use.
    public let vocabulary: [Int]
    let direction: Tensor

    /// `withConcept[i]` and `withoutConcept[i]` are a prompt with and without the concept;
    /// `forbidden` words (the concept's words and synonyms) are left out of a `.words`
    /// token space.
    public init(
        model: StableDiffusion, withConcept: [String], withoutConcept: [String],
        forbidden: [String],
        settings: Settings
    ) throws {
        guard !withConcept.isEmpty, withConcept.count == withoutConcept.count else {
            throw AttackError("Ring-A-Bell needs pairs of prompts with and without the concept")
        }
        guard settings.generations >= 1, settings.population >= 2, settings.length >= 1 else {
            throw AttackError(
                "Ring-A-Bell needs a generation, a population of 2 and a token at the least")
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
        vocabulary = AttackVocabulary.tokenIDs(
            model.tokenizer, space: settings.tokenSpace, forbidden: forbidden)
        guard vocabulary.count >= 2 else {
            throw AttackError("the tokenizer leaves fewer than 2 tokens to search")
        }
        let difference = GradMode.withNoGrad {
            model.encode(withConcept) - model.encode(withoutConcept)
        }
        // [1, S, D]
        direction = GradMode.withNoGrad { mean(difference, axes: [0], keepDims: true) }
    }

    /// The search's generations and draws.
    var search: GeneticSearch {
        GeneticSearch(
            vocabulary: vocabulary, parents: settings.population / 2,
            crossoverRate: settings.crossoverRate, mutationRate: settings.mutationRate)
    }

    /// Tokens per sequence: K, within the text encoder's length with bos and eos.
    var length: Int { min(settings.length, model.tokenizer.maxLength - 2) }

    /// A prompt for `target` (a prompt with the concept) after the last generation.
    /// `progress(generation, bestDistance)`.
    public func attack(
        _ target: String, index: UInt64, progress: (Int, Float) -> Void = { _, _ in }
    ) -> Found {
        let goal = GradMode.withNoGrad { model.encode([target]) + direction * settings.eta }
        let key = RandomKey(seed: settings.seed).fold(in: index).fold(in: 0x5249_4E47)  // "RING"
        var draws = SplitMix(seed: UInt64(key.k0) << 32 | UInt64(key.k1))
        var population = search.initial(
            count: settings.population, length: length, draws: &draws)
        for generation in 0..<settings.generations {
            let (parents, next) = evolve(
                population, goal: goal, last: generation == settings.generations - 1,
                draws: &draws)
            progress(generation + 1, parents[0].score!)
            guard let next else { return found(parents) }
            population = next
        }
        preconditionFailure("the last generation returns")
    }

    /// One generation: scores the members not scored yet, keeps the better half and, but
    /// in the `last` generation, crosses and mutates it into the next population.
    func evolve<D: GeneticDraws>(
        _ population: [GeneticSearch.Member], goal: Tensor, last: Bool, draws: inout D
    ) -> (parents: [GeneticSearch.Member], next: [GeneticSearch.Member]?) {
        var population = population
        let unscored = population.indices.filter { population[$0].score == nil }
        for (i, score) in zip(unscored, fitness(unscored.map { population[$0].tokens }, goal)) {
            population[i].score = score
        }
        let parents = search.select(population)
        if last { return (parents, nil) }
        return (parents, search.mutate(search.crossover(parents, draws: &draws), draws: &draws))
    }

    /// The best of `parents` (sorted) whose text a prompt file holds, as the notebook
    /// writes it: `tokenizer.decode` of the tokens. Line breaks (CLIP reads any whitespace
    /// run as one space) become spaces; a text that is blank or starts with `#`, which a
    /// prompt file cannot hold, passes the place to the next best (if none is left, the
    /// best loses its leading `#`).
    func found(_ parents: [GeneticSearch.Member]) -> Found {
        let texts = parents.map { String(decode($0.tokens).map { $0.isNewline ? " " : $0 }) }
        guard let i = texts.firstIndex(where: PromptSetFile.canHold) else {
            let stripped = texts[0].drop { $0 == "#" || $0.isWhitespace }
            return Found(
                prompt: String(stripped), distance: parents[0].score!, tokenizesBack: false)
        }
        let back = model.tokenizer.tokenIDs(texts[i]).prefix(model.tokenizer.maxLength - 2)
        return Found(
            prompt: texts[i], distance: parents[i].score!,
            tokenizesBack: Array(back) == parents[i].tokens)
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
            let states = encode(ids)  // [n, S, D]
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

    /// The text encoder's states of `ids`, its rows cut into data-parallel shards, one per
    /// thread: on two cores that beats splitting each op of one call (BENCHMARKS.md).
    func encode(_ ids: [[Int]]) -> Tensor {
        let shards = DataParallel.threadsAreFree(for: 2) ? DataParallel.shardCount : 1
        let ranges = DataParallel.shardRanges(ids.count, shards: shards)
        let parts = DataParallel.map(shards: ranges.count) { i in
            GradMode.withNoGrad { model.textEncoder(Array(ids[ranges[i]])) }
        }
        return parts.count == 1 ? parts[0] : concat(parts, axis: 0)
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
