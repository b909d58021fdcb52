import Diffusion
import Formats
import Foundation
import XCTest

/// A LoRA file whose A has no rank (an empty shape, or rank 0) fails with one line naming
/// the file and the key; before, the first trapped on an index and the second divided by
/// zero working out the adapter's scale.
final class LoRAFileErrorTests: XCTestCase {
    let layer = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_k"

    func assertRefused(down: [Int], up: [Int], line: UInt = #line) throws {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("duo-lora-\(UUID()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        var writer = SafeTensorsWriter()
        try writer.add(
            layer + ".lora_A.weight", shape: down,
            values: Array(repeating: 0, count: down.reduce(1, *)))
        try writer.add(
            layer + ".lora_B.weight", shape: up, values: Array(repeating: 0, count: up.reduce(1, *))
        )
        try writer.write(to: path)
        let unet = try UNet2DConditionModel.load(
            directory: ModelParityTests.models + "/pipeline/unet")
        XCTAssertThrowsError(try LoRAFile.load(path, into: unet), line: line) { error in
            let message = "\(error)"
            XCTAssertFalse(message.contains("\n"), message, line: line)
            XCTAssertTrue(message.contains(path), message, line: line)
            XCTAssertTrue(message.contains(layer + ".lora_A.weight"), message, line: line)
            XCTAssertTrue(message.contains("rank >= 1"), message, line: line)
        }
    }

    func testAnEmptyShapeIsRefused() throws {
        try assertRefused(down: [], up: [16, 2])
    }

    func testRankZeroIsRefused() throws {
        try assertRefused(down: [0, 16], up: [16, 0])
    }
}
