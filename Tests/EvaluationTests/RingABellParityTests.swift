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

    func assertClose(_ a: [Float], _ b: [Float], _ tolerance: Float, _ what: String) {
        XCTAssertEqual(a.count, b.count, what)
        let largest = zip(a, b).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThan(largest, tolerance, what)
    }
}
