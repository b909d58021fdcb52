import Diffusion
import Formats
import Foundation
import Tensor
import TestSupport
import XCTest

/// Adapters in the text encoder against transformers' CLIPTextModel with the same LoRA file
/// loaded by diffusers' `load_lora_weights` (tools/make_text_encoder_lora_fixture.py): the
/// file adapts the pipeline fixture's text encoder (q/k/v/out_proj) and its UNet's attn1,
/// with keys as diffusers writes them under transformers v5.
final class TextEncoderLoRATests: XCTestCase {
    static let folder = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
        .appendingPathComponent("text-encoder-lora").path
    static let adapter = folder + "/adapter.safetensors"

    func reference(_ name: String) throws -> Tensor {
        let file = try SafeTensorsReader(path: Self.folder + "/reference.safetensors")
        return Tensor(try file.floats(name), shape: try file.info(name).shape)
    }

    func models() throws -> (UNet2DConditionModel, CLIPTextModel) {
        let root = ModelParityTests.models + "/pipeline"
        return (
            try UNet2DConditionModel.load(directory: root + "/unet"),
            try CLIPTextModel.load(directory: root + "/text_encoder")
        )
    }

    func hidden(_ textEncoder: CLIPTextModel) throws -> Tensor {
        let ids = try reference("input_ids")
        let rows = (0..<ids.shape[0]).map { b in
            ids.slice(batch: b).scalars.map { Int($0) }
        }
        return GradMode.withNoGrad { textEncoder(rows) }
    }

    func temporaryPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent(
            "te-lora-\(UUID()).safetensors"
        ).path
    }

    // The text encoder's own parity tolerance (CLIPModelParityTests): the adapters add one
    // low-rank product per projection to the weights.
    let tolerance: Float = 1e-5

    func testTextEncoderAdaptersMatchDiffusersLoadLoRAWeights() throws {
        let (unet, textEncoder) = try models()
        let set = try LoRAFile.load(Self.adapter, into: unet, textEncoder: textEncoder)
        XCTAssertTrue(set.adaptsTextEncoder)
        XCTAssertEqual(set.adapters.count, 24, "16 UNet projections and 8 text-encoder ones")
        assertClose(
            try hidden(textEncoder), try reference("hidden_lora").scalars, rtol: 0,
            atol: tolerance, "adapted text encoder (transformers + peft)")
        let gap = zip(try hidden(textEncoder).scalars, try reference("hidden").scalars)
            .map { abs($0 - $1) }.max()!
        XCTAssertGreaterThan(gap, 0.1, "the adapter changes the encoder: the test can fail")
    }

    func testDetachingGivesBackTheOriginalEncoder() throws {
        let (unet, textEncoder) = try models()
        try LoRAFile.load(Self.adapter, into: unet, textEncoder: textEncoder).detach(from: unet)
        assertClose(
            try hidden(textEncoder), try reference("hidden").scalars, rtol: 0, atol: tolerance,
            "text encoder after detaching")
    }

    func testMergedTextEncoderComputesWhatTheAdaptersDo() throws {
        let (unet, textEncoder) = try models()
        try LoRAFile.load(Self.adapter, into: unet, textEncoder: textEncoder).merge(into: unet)
        XCTAssertTrue(textEncoder.layers.allSatisfy { $0.qProj.lora == nil })
        assertClose(
            try hidden(textEncoder), try reference("hidden_lora").scalars, rtol: 0,
            atol: tolerance, "merged text encoder (duo merge)")
    }

    /// duo writes transformers v4's names (`text_encoder.text_model.`), which diffusers reads
    /// under v4 and v5 alike (the fixture script checks v5); they read back to the same
    /// adapters.
    func testSavedAdaptersUseV4KeysAndReadBackTheSame() throws {
        let (unet, textEncoder) = try models()
        let set = try LoRAFile.load(Self.adapter, into: unet, textEncoder: textEncoder)
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        try LoRAFile.save(set, to: path)
        let keys = try SafeTensorsReader(path: path).tensors.map(\.name)
        let textKeys = keys.filter { $0.hasPrefix("text_encoder.") }
        XCTAssertEqual(textKeys.count, 16)
        XCTAssertTrue(
            textKeys.allSatisfy { $0.hasPrefix("text_encoder.text_model.encoder.layers.") },
            "\(textKeys.first ?? "")")
        XCTAssertEqual(keys.count - textKeys.count, 32, "the UNet's keys stay under unet.")

        let (otherUNet, otherEncoder) = try models()
        _ = try LoRAFile.load(path, into: otherUNet, textEncoder: otherEncoder)
        assertClose(
            try hidden(otherEncoder), try reference("hidden_lora").scalars, rtol: 0,
            atol: tolerance, "adapters written by duo, read back")
    }

    func testTextEncoderKeysWithoutATextEncoderAreRefusedByName() throws {
        let (unet, _) = try models()
        XCTAssertThrowsError(try LoRAFile.load(Self.adapter, into: unet)) { error in
            let line = "\(error)"
            XCTAssertTrue(line.contains(Self.adapter), line)
            XCTAssertTrue(line.contains("text_encoder.encoder.layers.0.self_attn"), line)
            XCTAssertTrue(line.contains("adapts the UNet only"), line)
        }
    }

    func testFreshTextEncoderAdaptersStartAtTheOriginalEncoder() throws {
        let (unet, textEncoder) = try models()
        let before = try hidden(textEncoder)
        let set = LoRASet.inject(
            into: unet, textEncoder: textEncoder, targets: [.textEncoder], rank: 2, alpha: 2,
            key: RandomKey(seed: 4))
        XCTAssertEqual(set.adapters.count, 8)
        XCTAssertTrue(set.adapters.allSatisfy { $0.0.hasPrefix("text_encoder.text_model.") })
        XCTAssertEqual(try hidden(textEncoder).scalars, before.scalars, "B starts at zero")
        XCTAssertTrue(textEncoder.parameters.allSatisfy { !$0.requiresGrad }, "frozen")
    }
}
