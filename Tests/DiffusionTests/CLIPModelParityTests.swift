@testable import Diffusion
import Formats
import Foundation
import Tensor
import TestSupport
import XCTest

/// The tiny random CLIPModel of Fixtures/models/clip against what transformers computed
/// for the same inputs (tools/make_clip_fixture.py): preprocessing, both towers'
/// features, the logits.
final class CLIPModelParityTests: XCTestCase {
    static let folder = ModelParityTests.models + "/clip"
    static let reference = try! SafeTensorsReader(
        path: ModelParityTests.models + "/clip-reference.safetensors")

    static func tensor(_ name: String) throws -> Tensor {
        Tensor(try reference.floats(name), shape: try reference.info(name).shape)
    }

    /// Images stored as U8 [N, H, W, C] (or one [H, W, C]).
    static func images(_ name: String) throws -> [PNGImage] {
        let shape = try reference.info(name).shape
        let bytes = try reference.withUnsafeRawBytes(name) { Array($0) }
        let (h, w, c) = (shape[shape.count - 3], shape[shape.count - 2], shape[shape.count - 1])
        return stride(from: 0, to: bytes.count, by: h * w * c).map {
            PNGImage(width: w, height: h, channels: c, pixels: Array(bytes[$0..<$0 + h * w * c]))
        }
    }

    /// The prompts the fixture tokenized, from its metadata.
    static func prompts() throws -> [String] {
        let json = try JSONParser.parse(Array(reference.metadata["fixture"]!.utf8))
        guard case .object(let members) = json,
            case .array(let items)? = members.first(where: { $0.key == "prompts" })?.value
        else { throw ModelError(file: "clip-reference.safetensors", "no prompts in metadata") }
        return items.compactMap { if case .string(let s) = $0 { s } else { nil } }
    }

    static let model = try! CLIPModel.load(directory: folder)

    /// The largest |value| of a reference tensor.
    func scale(_ expected: [Float]) -> Float { expected.map(abs).max() ?? 0 }

    /// The float32 difference two orders of a network's sums leave (TestSupport), on
    /// outputs of `scale`, doubled for the two sides rounding independently.
    func tolerance(_ weights: [Tensor], scale: Float) -> Float {
        2 * Float32Rounding.network(weights: weights) * scale
    }

    func testPixelValuesEqualTransformersPILProcessor() throws {
        // Same integer resampling, then the same float64 rescale and float32 normalize as
        // numpy: equal to the bit.
        let processor = try CLIPImageProcessor(file: Self.folder + "/preprocessor_config.json")
        XCTAssertEqual(
            try processor.pixelValues(try Self.images("images.model")).scalars,
            try Self.tensor("pixel_values.model").scalars,
            "pixel values of images at the crop size (CLIPImageProcessorPil)")
        let resized = try (0..<4).flatMap { try Self.images("resized.\($0).image") }
        XCTAssertEqual(resized.map(\.width), [31, 20, 24, 26], "the fixture's odd sizes")
        let expected = try Self.tensor("resized.pixel_values").scalars
        let found = try processor.pixelValues(resized).scalars
        XCTAssertEqual(found.count, expected.count)
        let worst = zip(found, expected).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertEqual(
            worst, 0,
            "pixel values of downscaled, upscaled, cropped and gray images (PIL bicubic)")
        var bilinear = processor
        bilinear.filter = .bilinear
        XCTAssertEqual(
            try bilinear.pixelValues(resized).scalars,
            try Self.tensor("resized.bilinear_pixel_values").scalars,
            "the same images with resample=2 (PIL bilinear)")
    }

    func testImageFeaturesMatchTransformers() throws {
        let clip = Self.model
        let pixels = try Self.tensor("pixel_values.model")
        let features = GradMode.withNoGrad { clip.imageFeatures(pixels) }
        let expected = try Self.tensor("image_features.model").scalars
        let weights = clip.visionModel.parameters + clip.visualProjection.parameters
        assertClose(
            features, expected, rtol: 0, atol: tolerance(weights, scale: scale(expected)),
            "get_image_features (transformers)")
        let embeds = try Self.tensor("image_embeds.model").scalars
        assertClose(
            CLIPModel.normalized(features), embeds, rtol: 0,
            atol: tolerance(weights, scale: 1), "image_embeds (transformers)")
    }

    func testTokensAndTextFeaturesMatchTransformers() throws {
        let clip = Self.model
        let tokenizer = try CLIPTokenizer(directory: Self.folder)
        let stored = try Self.tensor("text.input_ids")
        let length = stored.shape[1]
        let ids = try Self.prompts().map { tokenizer.encode($0, padTo: length) }
        XCTAssertEqual(ids.flatMap { $0 }.map(Float.init), stored.scalars, "input ids")
        let features = GradMode.withNoGrad { clip.textFeatures(ids) }
        let expected = try Self.tensor("text_features").scalars
        let weights = clip.textModel.parameters + clip.textProjection.parameters
        assertClose(
            features, expected, rtol: 0, atol: tolerance(weights, scale: scale(expected)),
            "get_text_features (transformers)")
        assertClose(
            CLIPModel.normalized(features), try Self.tensor("text_embeds").scalars, rtol: 0,
            atol: tolerance(weights, scale: 1), "text_embeds (transformers)")
    }

    func testLogitsPerImageMatchTransformers() throws {
        let clip = Self.model
        let (images, texts) = try GradMode.withNoGrad {
            (
                clip.imageFeatures(try Self.tensor("pixel_values.model")),
                clip.textFeatures(try Self.ids("text.input_ids"))
            )
        }
        let logits = clip.logitsPerImage(imageFeatures: images, textFeatures: texts)
        XCTAssertEqual(logits.shape, [10, 4])
        let expected = try Self.tensor("logits_per_image").scalars
        // Cosines carry both towers' rounding, times exp(logit_scale) = e².
        let weights = clip.parameters.filter { $0.rank >= 2 }
        assertClose(
            logits, expected, rtol: 0, atol: tolerance(weights, scale: exp(2)),
            "logits_per_image (transformers)")
    }

    func testPoolingTakesTheFirstEosOrTheLegacyHighestID() throws {
        var config = Self.model.config
        XCTAssertEqual(config.eosTokenID, 520, "the fixture's text_config.eos_token_id")
        let current = CLIPModel(config: config, key: nil)
        XCTAssertEqual(current.pooledPosition([519, 7, 520, 520, 3]), 2, "the first eos")
        XCTAssertEqual(current.pooledPosition([600, 520]), 1, "eos, not the highest id")
        XCTAssertEqual(current.pooledPosition([1, 3]), 0, "no eos: the first token")
        config.eosTokenID = 2
        let legacy = CLIPModel(config: config, key: nil)
        XCTAssertEqual(legacy.pooledPosition([600, 520]), 0, "eos_token_id 2: the highest id")
        XCTAssertEqual(legacy.pooledPosition([5, 9, 1, 9]), 1, "the first of equal highest ids")
    }

    /// Token id sequences stored as a [B, T] float tensor.
    static func ids(_ name: String) throws -> [[Int]] {
        let t = try tensor(name)
        let (rows, length) = (t.shape[0], t.shape[1])
        return (0..<rows).map { r in (0..<length).map { Int(t.scalars[r * length + $0]) } }
    }
}
