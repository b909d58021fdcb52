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

    /// DSPO takes DUO's settings, with DUO's preserving weights divided by the gradient
    /// scale of DPO's term at σ = 1/2 (β/2), and its own β; a λ on the command line is its own.
    func testDSPOWeighsDUOsPreservingTermsAgainstItsPairTerm() throws {
        var model = ModelDefaults()
        model.beta = 125
        model.baseLambda = 4e6
        model.promptedShare = 1
        var concept = ConceptFile.UnlearningDefaults()
        concept.unconditionalLambda = 1e3
        concept.learningRate = 5e-4
        var options = UnlearningOptions()
        options.method = .duo
        let duo = try UnlearningSettings.merged(model: model, concept: concept, options: options)
        options.method = .dspo
        let dspo = try UnlearningSettings.merged(model: model, concept: concept, options: options)
        XCTAssertEqual(duo.resolvedLambda, 4e6 * 125 / 100)
        XCTAssertEqual(dspo.resolvedLambda, duo.resolvedLambda / 62.5, accuracy: 1e-3)
        XCTAssertEqual(dspo.unconditionalLambda, 1e3 / 62.5, accuracy: 1e-6)
        XCTAssertEqual(dspo.resolvedLearningRate, duo.resolvedLearningRate)
        XCTAssertEqual(dspo.pairBeta, 0.001, "DSPO's launcher's beta_dpo")
        XCTAssertEqual(dspo.pairConvention, .diffusionDPO, "one timestep per pair, beta/2")
        XCTAssertEqual(dspo.preference, .dspo)
        concept.lambda = 5e5
        options.dspoBeta = 0.5
        let fromConcept = try UnlearningSettings.merged(
            model: model, concept: concept, options: options)
        XCTAssertEqual(fromConcept.resolvedLambda, 5e5 / 62.5, accuracy: 1e-2)
        XCTAssertEqual(fromConcept.pairBeta, 0.5)
        options.lambda = 7
        XCTAssertEqual(
            try UnlearningSettings.merged(model: model, concept: concept, options: options)
                .resolvedLambda, 7, "the command line's lambda as given")
        XCTAssertTrue(dspo.fields.contains { $0.key == "dspo_beta" })
        XCTAssertFalse(dspo.fields.contains { $0.key == "beta" || $0.key == "convention" })
    }
}
