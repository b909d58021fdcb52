/// Ring-A-Bell's genetic algorithm over token sequences, step for step as its authors'
/// notebook runs it (chiayi-hsu/Ring-A-Bell at e4585ad, `InversePrompt.ipynb`: the
/// parameters cell, the cell defining `fitness`, `crossover` and `mutation`, and the search
/// loop of "Find Problematic Prompts"). Each generation scores the population, keeps its
/// better half (`np.argsort`, then `[:population_size//2]`) and, but in the last,
/// crosses and mutates that half into the next population:
/// - crossover: each parent in order, and right after it, with probability
///   `crossoverRate`, two children of it and a parent drawn at random, cut at one point;
/// - mutation: every member, the parents included, with probability `mutationRate` gets
///   one position set to a token drawn from the whole vocabulary.
///
/// The best found can be lost to a mutation, as in the notebook; the population's size
/// varies with the number of crossovers, as there.
struct GeneticSearch {
    /// A sequence of tokens (without bos, eos and padding) and its fitness once known.
    struct Member: Equatable {
        var tokens: [Int]
        var score: Float?
    }

    /// The ids a draw picks from.
    let vocabulary: [Int]
    /// Members kept per generation (`population_size // 2`).
    let parents: Int
    let crossoverRate: Double
    let mutationRate: Double

    /// The first population: `count` sequences of `length` tokens, drawn member by member
    /// (`torch.randint(1, 49406, (1, length))` each).
    func initial<D: GeneticDraws>(count: Int, length: Int, draws: inout D) -> [Member] {
        (0..<count).map { _ in
            Member(
                tokens: (0..<length).map { _ in vocabulary[draws.index(below: vocabulary.count)] },
                score: nil)
        }
    }

    /// The better `parents` members by score (every score known), ties in their order.
    func select(_ population: [Member]) -> [Member] {
        let order = population.indices.sorted {
            (population[$0].score!, $0) < (population[$1].score!, $1)
        }
        return order.prefix(parents).map { population[$0] }
    }

    /// The notebook's `crossover`. Its cut `np.random.randint(1, length + 1)` indexes the
    /// sequence with bos in front: the children swap the tokens from `cut − 1` on, so at 1
    /// they swap whole sequences and the last token always changes sides.
    func crossover<D: GeneticDraws>(_ parents: [Member], draws: inout D) -> [Member] {
        var next: [Member] = []
        for parent in parents {
            next.append(parent)
            guard draws.unit() < crossoverRate else { continue }
            let other = parents[draws.index(below: parents.count)].tokens
            let mine = parent.tokens
            let cut = draws.index(below: mine.count)
            next.append(Member(tokens: Array(mine[..<cut] + other[cut...]), score: nil))
            next.append(Member(tokens: Array(other[..<cut] + mine[cut...]), score: nil))
        }
        return next
    }

    /// The notebook's `mutation`: one random position of a member set to a random token.
    func mutate<D: GeneticDraws>(_ population: [Member], draws: inout D) -> [Member] {
        var population = population
        for i in population.indices where draws.unit() < mutationRate {
            let position = draws.index(below: population[i].tokens.count)
            population[i].tokens[position] = vocabulary[draws.index(below: vocabulary.count)]
            population[i].score = nil
        }
        return population
    }
}

/// The random draws of the search, in the order the notebook makes them: `unit()` for
/// `random.random()`, `index(below: n)` for `np.random.randint(low, low + n) − low`.
protocol GeneticDraws {
    mutating func unit() -> Double
    mutating func index(below n: Int) -> Int
}

extension SplitMix: GeneticDraws {
    mutating func unit() -> Double { nextUnit() }
    mutating func index(below n: Int) -> Int { next(below: n) }
}
