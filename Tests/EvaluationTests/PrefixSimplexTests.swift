import Tensor
import XCTest

@testable import Evaluation

/// The parts of UnlearnDiffAtk's relaxed prefix the PyTorch fixture does not reach: the
/// projection's defining properties, the gradient clip (the tiny model's gradients stay
/// inside [-1, 1]) and the draws.
final class PrefixSimplexTests: XCTestCase {
    func testTheProjectionIsTheNearestPointOfTheSimplex() {
        XCTAssertEqual(PrefixSimplex.projected([2, 0, 0]), [1, 0, 0])
        XCTAssertEqual(PrefixSimplex.projected([0.5, 0.5, 0.5]), [1 / 3, 1 / 3, 1 / 3])
        XCTAssertEqual(PrefixSimplex.projected([0.2, 0.3, 0.5]), [0.2, 0.3, 0.5], "on it already")
        // [0.9, 0.6, -1]: θ = (0.9 + 0.6 − 1) / 2 = 0.25 → [0.65, 0.35, 0].
        let found = PrefixSimplex.projected([0.9, 0.6, -1])
        for (a, b) in zip(found, [0.65, 0.35, 0] as [Float]) {
            XCTAssertEqual(a, b, accuracy: 1e-6)
        }
        // Nearest: no other point of the simplex is closer (random points of it).
        let v: [Float] = [0.3, -0.2, 0.8, 0.05, 0.4]
        let x = PrefixSimplex.projected(v[...])
        XCTAssertEqual(x.reduce(0, +), 1, accuracy: 1e-6)
        XCTAssertTrue(x.allSatisfy { $0 >= 0 })
        let distance = { (y: [Float]) in zip(v, y).map { ($0 - $1) * ($0 - $1) }.reduce(0, +) }
        let uniforms = RandomKey(seed: 3).uniform(count: 500)
        for i in stride(from: 0, to: 500, by: 5) {
            let raw = uniforms[i..<(i + 5)].map { -log($0 + 1e-9) }
            let y = raw.map { $0 / raw.reduce(0, +) }
            XCTAssertLessThanOrEqual(distance(x), distance(y) + 1e-6)
        }
    }

    func testTheGradientPassesStraightThroughClippedToOne() {
        XCTAssertEqual(
            PrefixSimplex.straightThrough([-3, -0.5, 0, 0.25, 2]), [-1, -0.5, 0, 0.25, 1])
    }

    func testDrawsFollowTheVectorsAndNeverPickAZero() {
        let simplex = PrefixSimplex(positions: 2, size: 4)
        simplex.probabilities.assign(Tensor([0, 0.25, 0, 0.75, 0, 0, 1, 0], shape: [2, 4]))
        var counts = [0, 0, 0, 0]
        for i in 0..<4000 {
            let draw = simplex.draw(key: RandomKey(seed: 9).fold(in: UInt64(i)))
            XCTAssertEqual(draw[1], 2)
            counts[draw[0]] += 1
        }
        XCTAssertEqual(counts[0] + counts[2], 0, "zero-probability tokens")
        XCTAssertEqual(Double(counts[1]) / 4000, 0.25, accuracy: 0.03)
        XCTAssertEqual(simplex.mostLikely, [3, 2])
        XCTAssertEqual(simplex.oneHot([3, 0]).scalars, [0, 0, 0, 1, 1, 0, 0, 0])
    }
}
