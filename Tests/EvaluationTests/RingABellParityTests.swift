import Diffusion
import Formats
import Foundation
import Tensor
import XCTest

@testable import Evaluation

/// Ring-A-Bell's concept vector and fitness against the authors' formulas computed with
/// transformers' CLIPTextModel on the method fixture's tiny pipeline
/// (tools/make_ring_a_bell_fixture.py). A wrong sign, a missing eta or padding that differs
/// from the reference's fails it.
final class RingABellParityTests: XCTestCase {
    static let fixture = Bundle.module.resourcePath! + "/Fixtures/attack/ring-a-bell.safetensors"
    static let pipeline = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("MethodTests/Fixtures/sd-tiny").path

    func testConceptVectorGoalAndFitnessMatchTheReference() throws {
        let file = try SafeTensorsReader(path: Self.fixture)
        func tensor(_ name: String) throws -> Tensor {
            Tensor(try file.floats(name), shape: try file.info(name).shape)
        }
        let model = try StableDiffusion.load(directory: Self.pipeline)
        var settings = RingABell.Settings()
        settings.eta = Float(file.metadata["eta"]!)!
        let attack = try RingABell(
            model: model, withConcept: ["a red car", "a red house on a field"],
            withoutConcept: ["a car", "a house on a field"], forbidden: ["red"],
            settings: settings)
        // Hidden states are O(1): float32 encodings agree to a few 1e-6.
        assertClose(attack.direction.scalars, try tensor("direction").scalars, 1e-4, "direction")
        let goal = GradMode.withNoGrad {
            model.encode(["a red apple on a plate"]) + attack.direction * settings.eta
        }
        assertClose(goal.scalars, try tensor("goal").scalars, 1e-4, "goal")
        let sequences = try tensor("sequences")
        let length = sequences.shape[1]
        let rows = (0..<sequences.shape[0]).map { r in
            (0..<length).map { Int(sequences.scalars[r * length + $0]) }
        }
        // A sum of 16 x 32 squares near 140: float32 sums agree to about 1e-5 relative.
        let fitness = attack.fitness(rows, goal)
        for (got, expected) in zip(fitness, try tensor("fitness").scalars) {
            XCTAssertEqual(got, expected, accuracy: 1e-4 * expected)
        }
    }

    /// Three generations of the search against the authors' notebook's own `fitness`,
    /// `crossover` and `mutation` run on the same first population and the same draws
    /// (tools/make_ring_a_bell_fixture.py --notebook): the better half kept, the children
    /// and mutations (parents mutated too), and the decoded best, token for token. A cut
    /// one place off, parents spared from mutation, or a draw out of order fails it.
    func testGenerationsMatchTheNotebookOnTheSameDraws() throws {
        let path = Bundle.module.resourcePath! + "/Fixtures/attack/ring-a-bell-generations.json"
        let json = try JSONParser.parse(Array(try Data(contentsOf: URL(fileURLWithPath: path))))
        func ids(_ value: JSONValue?) -> [[Int]] { value!.array!.map { $0.array!.map { $0.int! } } }
        let model = try StableDiffusion.load(directory: Self.pipeline)
        var settings = RingABell.Settings()
        settings.eta = Float(json["eta"]!.double!)
        settings.population = json["population"]!.int!
        settings.length = json["length"]!.int!
        let attack = try RingABell(
            model: model, withConcept: ["a red car", "a red house on a field"],
            withoutConcept: ["a car", "a house on a field"], forbidden: ["red"],
            settings: settings)
        // The notebook's randint(1, 49406) on SD 1.4: every id but 0, bos and eos.
        XCTAssertEqual(attack.vocabulary, Array(1..<model.tokenizer.bosTokenID))
        let goal = GradMode.withNoGrad {
            model.encode(["a red apple on a plate"]) + attack.direction * settings.eta
        }
        var draws = RecordedDraws(json["draws"]!.array!)
        var population = ids(json["first"]).map { GeneticSearch.Member(tokens: $0, score: nil) }
        let generations = json["generations"]!.array!
        var parents: [GeneticSearch.Member] = []
        for (g, expected) in generations.enumerated() {
            let (kept, next) = attack.evolve(
                population, goal: goal, last: g == generations.count - 1, draws: &draws)
            parents = kept
            XCTAssertEqual(kept.map(\.tokens), ids(expected["parents"]), "generation \(g) kept")
            let scores = expected["scores"]!.array!.map { Float($0.double!) }.sorted()
            for (got, want) in zip(kept.map { $0.score! }, scores) {
                XCTAssertEqual(got, want, accuracy: 1e-4 * want, "generation \(g) fitness")
            }
            XCTAssertEqual(next?.map(\.tokens), expected["next"].map { ids($0) }, "generation \(g)")
            population = next ?? []
        }
        XCTAssertEqual(draws.used, draws.recorded.count, "every draw the notebook made, no more")
        let best = json["best"]!.string!
        XCTAssertEqual(attack.decode(parents[0].tokens), best, "the prompt, as decode writes it")
        XCTAssertEqual(attack.found(parents).prompt, best)
        for pair in json["decoded"]!.array! {
            let tokens = pair.array![0].array!.map { $0.int! }
            XCTAssertEqual(attack.decode(tokens), pair.array![1].string!, "decode \(tokens)")
        }
    }

    func assertClose(_ a: [Float], _ b: [Float], _ tolerance: Float, _ what: String) {
        XCTAssertEqual(a.count, b.count, what)
        let largest = zip(a, b).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThan(largest, tolerance, what)
    }
}

/// Draws replayed in the notebook's order: a unit for `random.random()`, an index for
/// `np.random.randint(low, high)` (its value − low, its range checked).
struct RecordedDraws: GeneticDraws {
    let recorded: [JSONValue]
    var used = 0

    init(_ recorded: [JSONValue]) { self.recorded = recorded }

    mutating func next(_ kind: String) -> [JSONValue] {
        precondition(used < recorded.count, "the search drew more than the notebook")
        let draw = recorded[used].array!
        used += 1
        precondition(
            draw[0].string == kind, "draw \(used): \(kind) where the notebook drew \(draw)")
        return draw
    }

    mutating func unit() -> Double { next("unit")[1].double! }

    mutating func index(below n: Int) -> Int {
        let draw = next("int")
        let (low, high, value) = (draw[1].int!, draw[2].int!, draw[3].int!)
        precondition(
            high - low == n, "draw \(used): below \(n) where the notebook drew in [\(low), \(high))"
        )
        return value - low
    }
}
