import Diffusion
import Foundation
import World
import XCTest

final class WorldCheckTests: XCTestCase {
    func testReportsRatesForEveryRowAndTheJSONSchema() throws {
        // An untrained world model (one step): the check must run and report, whatever
        // the numbers.
        let root = FileManager.default.temporaryDirectory.appendingPathComponent(
            "worldcheck-\(UUID())"
        ).path
        defer { try? FileManager.default.removeItem(atPath: root) }
        var training = Pretraining.Parameters()
        training.steps = 1
        training.batchSize = 2
        try Pretraining.train(directory: root, parameters: training, resume: false)
        var parameters = WorldCheck.Parameters()
        parameters.samples = 2
        parameters.steps = 2
        let result = try WorldCheck.run(
            model: try StableDiffusion.load(directory: root + "/model"),
            detector: try WorldDetector.shipped(), parameters: parameters)
        for concept in Concept.allCases {
            XCTAssertEqual(Set(result.conceptRates[concept]!.keys), Set(PromptRowKind.allCases))
            XCTAssertTrue(result.conceptRates[concept]!.values.allSatisfy { (0...1).contains($0) })
        }
        XCTAssertTrue((0...1).contains(result.faithfulness))
        XCTAssertTrue(result.fid.isFinite && result.fid >= 0)
        let object = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(result.json.utf8)) as? [String: Any])
        XCTAssertEqual(Set(object.keys), ["concepts", "faithfulness", "fid", "detector_accuracy"])
        let concepts = try XCTUnwrap(object["concepts"] as? [String: [String: Double]])
        XCTAssertEqual(
            Set(concepts["stripes"]!.keys), ["explicit", "synonym", "implicit", "neutral"])
        let accuracy = try XCTUnwrap(object["detector_accuracy"] as? [String: Double])
        XCTAssertEqual(Set(accuracy.keys), ["stripes", "splatter", "shape", "colour"])
        XCTAssertGreaterThan(accuracy["colour"]!, 0.9, "the shipped detectors on real world images")
    }
}
