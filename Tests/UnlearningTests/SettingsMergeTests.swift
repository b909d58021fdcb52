import Concepts
import Foundation
import Unlearning
import World
import XCTest

/// A run's settings: the model folder's defaults, then the concept file's, then the
/// command line's, each winning over the one before.
final class SettingsMergeTests: XCTestCase {
    func testOptionsWinOverTheConceptFileWhichWinsOverTheModel() throws {
        var model = ModelDefaults()
        model.beta = 125
        model.promptedShare = 1
        var concept = ConceptFile.UnlearningDefaults()
        concept.beta = 250
        concept.rank = 8
        var options = UnlearningOptions()
        XCTAssertEqual(
            try UnlearningSettings.merged(model: model, concept: .init(), options: options).beta,
            125)
        let fromConcept = try UnlearningSettings.merged(
            model: model, concept: concept, options: options)
        XCTAssertEqual(fromConcept.beta, 250)
        XCTAssertEqual(fromConcept.rank, 8)
        XCTAssertEqual(fromConcept.alpha, 8, "alpha follows the rank unless given")
        XCTAssertEqual(fromConcept.promptedShare, 1, "the model's, where neither sets it")
        options.beta = 400
        options.steps = 7
        let fromOptions = try UnlearningSettings.merged(
            model: model, concept: concept, options: options)
        XCTAssertEqual(fromOptions.beta, 400)
        XCTAssertEqual(fromOptions.steps, 7)
        XCTAssertEqual(fromOptions.rank, 8)
        XCTAssertEqual(
            try UnlearningSettings.merged(
                model: ModelDefaults(), concept: .init(), options: .init()),
            UnlearningSettings(), "nothing given: the methods' reference settings")
    }

    func testAConceptFilesUnconditionalTermIsForPromptedDUOOnly() throws {
        var concept = ConceptFile.UnlearningDefaults()
        concept.unconditionalLambda = 1e3
        var prompted = ModelDefaults()
        prompted.promptedShare = 1
        XCTAssertEqual(
            try UnlearningSettings.merged(model: prompted, concept: concept, options: .init())
                .unconditionalLambda, 1e3)
        XCTAssertEqual(
            try UnlearningSettings.merged(
                model: ModelDefaults(), concept: concept, options: .init()
            )
            .unconditionalLambda, 0, "prompt-free: dropped")
        var half = UnlearningOptions()
        half.promptedShare = 0.5
        half.unconditionalLambda = 10
        XCTAssertThrowsError(
            try UnlearningSettings.merged(model: prompted, concept: concept, options: half)
        ) {
            XCTAssertTrue(
                "\($0)".contains("needs every pair prompted (--prompted-share 1, got 0.5)"), "\($0)"
            )
        }
    }
}
