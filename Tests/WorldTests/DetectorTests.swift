import Evaluation
import Formats
import Foundation
import Tensor
import TestSupport
import World
import XCTest

final class DetectorTests: XCTestCase {
    // MARK: the shipped detector

    /// Acceptance 1 of the embedded default: on images it never saw (a seed disjoint from
    /// training), presence >= 98% per concept, shape and colour >= 95%.
    func testShippedDetectorMeetsTheAccuracyTargetsOnHeldOutImages() throws {
        let detector = try WorldDetector.shipped()
        let accuracy = DetectorTraining.evaluate(detector, count: 1000, seed: 0x7E57_0001)
        for concept in Concept.allCases {
            let rate = accuracy.concepts[concept]!
            XCTAssertGreaterThanOrEqual(rate, 0.98, "\(concept) presence accuracy \(rate) < 0.98")
        }
        XCTAssertGreaterThanOrEqual(accuracy.shape, 0.95, "shape accuracy \(accuracy.shape) < 0.95")
        XCTAssertGreaterThanOrEqual(
            accuracy.colour, 0.95, "colour accuracy \(accuracy.colour) < 0.95")
    }

    func testShippedDetectorReadsAWorldPNGAsItsOwnRendering() throws {
        let world = World()
        let sample = world.samples(0..<1, seed: 5, stripes: .mention(.explicit), splatter: .absent)[
            0]
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "det-\(UUID()).png"
        ).path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try world.png(sample.scene).write(to: path)
        let detector = try WorldDetector.shipped()
        let fromFile = detector.predict(images: [try WorldDetector.image(contentsOf: path)])[0]
        XCTAssertEqual(fromFile.shape, sample.labels.shape)
        XCTAssertEqual(fromFile.colour, sample.labels.colour)
        XCTAssertGreaterThan(
            fromFile.scores[.stripes]!, 0.5, "stripes drawn, score \(fromFile.scores)")
        XCTAssertLessThan(
            fromFile.scores[.splatter]!, 0.5, "no splatter drawn, score \(fromFile.scores)")
    }

    func testFeaturesArePenultimateAndFIDOfASetWithItselfIsZero() throws {
        let detector = try WorldDetector.shipped()
        let images = World().batch(0..<64, seed: 3).images
        let features = GradMode.withNoGrad { detector.features(images) }
        XCTAssertEqual(features.shape, [64, WorldDetector.featureCount])
        // Zero up to the round-off of two 128x128 eigendecompositions of Float32 statistics.
        XCTAssertEqual(FrechetDistance.distance(detector, images, images), 0, accuracy: 1e-3)
        // Striped scenes against plain ones: the features see the difference.
        let striped = stack(
            World().samples(0..<64, seed: 3, stripes: .mention(.explicit), splatter: .absent))
        let plain = stack(
            World().samples(64..<128, seed: 3, stripes: .absent, splatter: .absent))
        let plainAgain = stack(
            World().samples(128..<192, seed: 3, stripes: .absent, splatter: .absent))
        XCTAssertGreaterThan(
            FrechetDistance.distance(detector, striped, plain),
            2 * FrechetDistance.distance(detector, plainAgain, plain))
    }

    // MARK: the loss

    func testCrossEntropyGradientMatchesFiniteDifferences() {
        let logits = randomTensor([4, 5], seed: 11, scale: 2)
        checkGradients([logits], "crossEntropy") {
            DetectorLoss.crossEntropy(logits: $0[0], classes: [0, 4, 2, 2])
        }
    }

    func testBinaryCrossEntropyGradientMatchesFiniteDifferences() {
        let logits = randomTensor([3, 2], seed: 12, scale: 2)
        let targets = Tensor([1, 0, 0, 1, 1, 1], shape: [3, 2])
        checkGradients([logits, targets], checked: [0], "binaryCrossEntropy") {
            DetectorLoss.binaryCrossEntropy(logits: $0[0], targets: $0[1])
        }
    }

    func testCrossEntropyValues() {
        // Equal logits: -log(1/K).
        let flat = DetectorLoss.crossEntropy(logits: Tensor.zeros([2, 6]), classes: [0, 5])
        XCTAssertEqual(flat.item, Float(log(6.0)), accuracy: 1e-5, "uniform logits give ln 6")
        // One row by hand: z = (1, 2, 3), class 0: log(e + e^2 + e^3) - 1.
        let row = DetectorLoss.crossEntropy(
            logits: Tensor([1, 2, 3], shape: [1, 3]), classes: [0])
        XCTAssertEqual(row.item, Float(log(exp(1.0) + exp(2.0) + exp(3.0)) - 1), accuracy: 1e-5)
        // Confident logits stay finite (no overflow in logsumexp).
        let big = DetectorLoss.crossEntropy(
            logits: Tensor([100, -100], shape: [1, 2]), classes: [1])
        XCTAssertEqual(big.item, 200, accuracy: 1e-3, "logit gap 200 gives loss 200")
        // Logits 0 give ln 2 for either target.
        let bce = DetectorLoss.binaryCrossEntropy(
            logits: Tensor.zeros([2, 2]), targets: Tensor([1, 0, 0, 1], shape: [2, 2]))
        XCTAssertEqual(bce.item, Float(log(2.0)), accuracy: 1e-6, "logits 0 give ln 2")
    }

    // MARK: the line protocol

    func testJSONLineListsTheRequestedConceptsInOrder() {
        let prediction = DetectorPrediction(
            scores: [.stripes: 0.25, .splatter: 0.75], shape: .circle, colour: .red)
        XCTAssertEqual(
            prediction.jsonLine(path: "a \"b\".png"),
            #"{"path": "a \"b\".png", "scores": {"stripes": 0.250000, "splatter": 0.750000}, "#
                + #""shape": "circle", "colour": "red"}"#)
        XCTAssertEqual(
            prediction.jsonLine(path: "x.png", concepts: [.splatter]),
            #"{"path": "x.png", "scores": {"splatter": 0.750000}, "#
                + #""shape": "circle", "colour": "red"}"#
        )
    }

    func testAnImageOfTheWrongSizeIsRefusedNamingTheFile() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "det-\(UUID()).png"
        ).path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try PNGImage(width: 8, height: 8, channels: 1, pixels: [UInt8](repeating: 128, count: 64))
            .write(to: path)
        XCTAssertThrowsError(try WorldDetector.image(contentsOf: path)) {
            XCTAssertTrue("\($0)".contains(path) && "\($0)".contains("8x8"), "\($0)")
        }
        XCTAssertThrowsError(try WorldDetector.image(contentsOf: path + ".missing")) {
            XCTAssertTrue("\($0)".contains(path + ".missing"), "\($0)")
        }
    }
}

/// [n, 3, 32, 32] images of `samples`.
private func stack(_ samples: [WorldSample]) -> Tensor {
    Tensor(
        samples.flatMap(\.image), shape: [samples.count, World.channels, World.size, World.size])
}
