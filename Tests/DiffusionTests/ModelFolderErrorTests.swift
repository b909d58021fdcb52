import Diffusion
import Formats
import Foundation
import Tensor
import XCTest

/// Broken model folders fail with one line naming the file, the key, expected vs found.
final class ModelFolderErrorTests: XCTestCase {
    var scratch: String!

    override func setUpWithError() throws {
        scratch =
            FileManager.default.temporaryDirectory.appendingPathComponent("duo-folder-\(UUID())")
            .path
        try FileManager.default.copyItem(
            atPath: ModelParityTests.models + "/pipeline/unet", toPath: scratch)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: scratch)
    }

    private var weightsPath: String { scratch + "/diffusion_pytorch_model.safetensors" }

    /// Rewrites the UNet's weights through `change` (name, shape, values) -> replacement.
    private func rewriteWeights(_ change: (String, [Int], [Float]) -> (String, [Int], [Float])?)
        throws
    {
        let reader = try SafeTensorsReader(path: weightsPath)
        var writer = SafeTensorsWriter()
        for info in reader.tensors {
            if let (name, shape, values) = change(
                info.name, info.shape, try reader.floats(info.name))
            {
                try writer.add(name, shape: shape, values: values)
            }
        }
        try writer.write(to: weightsPath)
    }

    private func editConfig(_ from: String, _ to: String) throws {
        let path = scratch + "/config.json"
        let text = try String(contentsOfFile: path, encoding: .utf8)
        XCTAssertTrue(text.contains(from), "fixture config has \(from)")
        try text.replacingOccurrences(of: from, with: to).write(
            toFile: path, atomically: true, encoding: .utf8)
    }

    private func assertLoadFails(
        containing parts: [String], file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertThrowsError(
            try UNet2DConditionModel.load(directory: scratch), file: file, line: line
        ) { error in
            let message = String(describing: error)
            XCTAssertFalse(message.contains("\n"), "one line: \(message)", file: file, line: line)
            for part in parts {
                XCTAssertTrue(
                    message.contains(part), "'\(message)' names \(part)", file: file, line: line)
            }
        }
    }

    func testMissingComponentNamesTheFolder() throws {
        try FileManager.default.removeItem(atPath: weightsPath)
        assertLoadFails(containing: [scratch, "diffusion_pytorch_model.safetensors"])
        try FileManager.default.removeItem(atPath: scratch + "/config.json")
        assertLoadFails(containing: [scratch + "/config.json", "missing"])
    }

    func testMissingTensorNamesFileKeyAndExpectedShape() throws {
        try rewriteWeights { $0 == "conv_in.weight" ? nil : ($0, $1, $2) }
        assertLoadFails(containing: [weightsPath, "'conv_in.weight'", "missing", "[16, 4, 3, 3]"])
    }

    func testMisshapenTensorNamesExpectedAndFound() throws {
        try rewriteWeights { name, shape, values in
            name == "time_embedding.linear_1.weight"
                ? (name, [shape[1], shape[0]], values) : (name, shape, values)
        }
        assertLoadFails(containing: [
            weightsPath, "'time_embedding.linear_1.weight'", "expected shape [64, 16]",
            "found [16, 64]",
        ])
    }

    func testUnsupportedConfigValuesAreErrors() throws {
        try editConfig("\"CrossAttnDownBlock2D\"", "\"AttnDownBlock2D\"")
        assertLoadFails(containing: [
            scratch + "/config.json", "'down_block_types'", "AttnDownBlock2D",
        ])
        try editConfig("\"AttnDownBlock2D\"", "\"CrossAttnDownBlock2D\"")
        try editConfig("\"act_fn\": \"silu\"", "\"act_fn\": \"gelu\"")
        assertLoadFails(containing: ["'act_fn'", "silu", "\"gelu\""])
        try editConfig("\"act_fn\": \"gelu\"", "\"act_fn\": \"silu\"")
        try editConfig("\"layers_per_block\": 1", "\"layers_per_block\": \"one\"")
        assertLoadFails(containing: ["'layers_per_block'", "expected an integer", "\"one\""])
    }

    /// Sizes of zero, below zero or past any model's would divide by zero, make a tensor of
    /// negative shape, or run out of memory or time; each is refused by name instead.
    func testSizesOutOfRangeAreErrors() throws {
        for (from, to, key) in [
            ("\"layers_per_block\": 1", "\"layers_per_block\": 0", "'layers_per_block'"),
            ("\"layers_per_block\": 1", "\"layers_per_block\": 1000000000", "'layers_per_block'"),
            ("\"norm_num_groups\": 8", "\"norm_num_groups\": 0", "'norm_num_groups'"),
            ("\"attention_head_dim\": 4", "\"attention_head_dim\": [4, 0]", "'attention_head_dim'"),
            ("\"in_channels\": 4", "\"in_channels\": -3", "'in_channels'"),
            (
                "\"transformer_layers_per_block\": 1", "\"transformer_layers_per_block\": -1",
                "'transformer_layers_per_block'"
            ),
            ("\"norm_eps\": 1e-05", "\"norm_eps\": -1", "'norm_eps'"),
        ] {
            try editConfig(from, to)
            assertLoadFails(containing: [scratch + "/config.json", key, "expected"])
            try editConfig(to, from)
        }
        XCTAssertNoThrow(try UNet2DConditionModel.load(directory: scratch))
    }

    func testPickleCheckpointsAreRefused() throws {
        try FileManager.default.moveItem(
            atPath: weightsPath, toPath: scratch + "/diffusion_pytorch_model.bin")
        assertLoadFails(containing: [".bin", "pickle"])
    }
}
