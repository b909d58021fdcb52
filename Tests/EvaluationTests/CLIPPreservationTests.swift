import Diffusion
import Evaluation
import Formats
import Foundation
import Tensor
import TestSupport
import XCTest

/// CLIP score and CLIP-FID on the tiny random CLIP folder of the Diffusion tests, against
/// torchmetrics' CLIPScore and scipy's Fréchet distance on transformers' features
/// (tools/make_clip_fixture.py).
final class CLIPPreservationTests: XCTestCase {
    static let models = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("DiffusionTests/Fixtures/models")
    static let folder = models.appendingPathComponent("clip").path
    static let reference = try! SafeTensorsReader(
        path: models.appendingPathComponent("clip-reference.safetensors").path)
    /// The fixture's prompts; image i is scored against prompt i % 4.
    static let prompts = [
        "a photo of a cat", "a red circle on a blue background", "two dogs", "stripes, stripes!",
    ]

    static func images(_ name: String) throws -> [PNGImage] {
        let shape = try reference.info(name).shape
        let bytes = try reference.withUnsafeRawBytes(name) { Array($0) }
        let (h, w, c) = (shape[1], shape[2], shape[3])
        return stride(from: 0, to: bytes.count, by: h * w * c).map {
            PNGImage(width: w, height: h, channels: c, pixels: Array(bytes[$0..<$0 + h * w * c]))
        }
    }

    static func floats(_ name: String) throws -> Tensor {
        Tensor(try reference.floats(name), shape: try reference.info(name).shape)
    }

    func testCosinesOfTransformersFeaturesGiveTorchmetricsScores() throws {
        // numpy computed them in float64 from the same float32 features; stored as float32.
        let images = try Self.floats("image_features.model")
        let texts = try Self.floats("text_features")
        let paired = Tensor(
            (0..<10).flatMap { Array(texts.scalars[($0 % 4) * 8..<($0 % 4 + 1) * 8]) },
            shape: [10, 8])
        let scores = CLIPPreservation.cosines(images, paired).map { Float(100 * $0) }
        assertClose(
            scores, try Self.floats("clip_score.per_image").scalars, rtol: Float.ulpOfOne,
            atol: 0, "100 cos per image (torchmetrics' _clip_score_update)")
        let score = CLIPPreservation.clipScore(imageFeatures: images, promptFeatures: paired)
        XCTAssertEqual(
            Float(score), try Self.floats("clip_score").scalars[0], accuracy: 1e-5,
            "torchmetrics' CLIPScore: the mean, floored at 0")
        let negated = CLIPPreservation.clipScore(
            imageFeatures: images, promptFeatures: paired * -1)
        XCTAssertEqual(negated, 0, "a negative mean is floored at 0")
    }

    func testScoreAndFIDFromImagesMatchTransformersAndScipy() throws {
        let metric = try CLIPPreservation(
            folder: Self.folder, prompts: (0..<10).map { Self.prompts[$0 % 4] })
        let original = try Self.images("images.original")
        let candidate = try Self.images("images.model")
        let (score, fid) = (0, 1)
        let own = try metric.measure(original, original: original, isOriginal: true)
        XCTAssertEqual(own[fid], 0, "the original against itself")
        let measured = try metric.measure(candidate, original: original, isOriginal: false)

        // The features carry float32 rounding of both towers, r relative (TestSupport's
        // estimate, doubled for two independent sides); a cosine moves by about 2r, the
        // score by 100 times that.
        let model = try CLIPModel.load(directory: Self.folder)
        let r = 2 * Double(Float32Rounding.network(weights: model.parameters))
        XCTAssertEqual(
            measured[score]!, Double(try Self.floats("clip_score").scalars[0]),
            accuracy: 100 * 2 * r, "CLIP score (torchmetrics on transformers' features)")
        // Every term of d² is a sum of products of two features: relative errors r move it
        // by about 2r of the size of those terms, at most 2 (tr Σ1 + tr Σ2) + |μ1 − μ2|².
        let a = FeatureStatistics(features: try Self.floats("image_features.model"))
        let b = FeatureStatistics(features: try Self.floats("image_features.original"))
        let trace = (0..<8).reduce(0.0) { $0 + a.covariance[$1 * 9] + b.covariance[$1 * 9] }
        let meanTerm = zip(a.mean, b.mean).reduce(0.0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
        XCTAssertEqual(
            measured[fid]!, Double(try Self.floats("clip_fid").scalars[0]),
            accuracy: 2 * r * (2 * trace + meanTerm),
            "CLIP-FID (scipy.linalg.sqrtm on transformers' features)")
        XCTAssertEqual(metric.columns.map(\.key), ["clip_score", "clip_fid"])
    }

    func testMismatchedCropSizeNamesBothFiles() throws {
        let scratch = FileManager.default.temporaryDirectory
            .appendingPathComponent("duo-clip-\(UUID())").path
        try FileManager.default.copyItem(atPath: Self.folder, toPath: scratch)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let path = scratch + "/preprocessor_config.json"
        let text = try String(contentsOfFile: path, encoding: .utf8)
        try text.replacingOccurrences(of: "\"height\": 24", with: "\"height\": 32").write(
            toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try CLIPPreservation(folder: scratch, prompts: ["a cat"])) {
            let message = String(describing: $0)
            for part in [path, "crop_size", "expected 24x24", "vision_config.image_size", "24x32"] {
                XCTAssertTrue(message.contains(part), "'\(message)' names \(part)")
            }
        }
    }
}
