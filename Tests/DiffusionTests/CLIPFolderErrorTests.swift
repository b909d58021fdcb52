import Diffusion
import Formats
import Foundation
import XCTest

/// A broken CLIP folder fails with one line naming the file, the key, expected vs found.
final class CLIPFolderErrorTests: XCTestCase {
    var scratch: String!

    override func setUpWithError() throws {
        scratch =
            FileManager.default.temporaryDirectory.appendingPathComponent("duo-clip-\(UUID())")
            .path
        try FileManager.default.copyItem(atPath: CLIPModelParityTests.folder, toPath: scratch)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: scratch)
    }

    private var weightsPath: String { scratch + "/model.safetensors" }

    /// Rewrites the weights through `change` (name, shape, values) -> replacement or nil.
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

    private func edit(_ file: String, _ from: String, _ to: String) throws {
        let path = scratch + "/" + file
        let text = try String(contentsOfFile: path, encoding: .utf8)
        XCTAssertTrue(text.contains(from), "fixture \(file) has \(from)")
        try text.replacingOccurrences(of: from, with: to).write(
            toFile: path, atomically: true, encoding: .utf8)
    }

    private func assertFails(
        _ body: () throws -> Void, containing parts: [String], file: StaticString = #filePath,
        line: UInt = #line
    ) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            let message = String(describing: error)
            XCTAssertFalse(message.contains("\n"), "one line: \(message)", file: file, line: line)
            for part in parts {
                XCTAssertTrue(
                    message.contains(part), "'\(message)' names \(part)", file: file, line: line)
            }
        }
    }

    private func load() throws { _ = try CLIPModel.load(directory: scratch) }

    func testMissingWeightsFileNamesTheExpectedFile() throws {
        try FileManager.default.removeItem(atPath: weightsPath)
        assertFails(load, containing: [scratch, "model.safetensors", "missing"])
    }

    func testMissingKeyNamesFileAndKey() throws {
        try rewriteWeights { $0 == "vision_model.post_layernorm.weight" ? nil : ($0, $1, $2) }
        assertFails(
            load,
            containing: [weightsPath, "vision_model.post_layernorm.weight", "missing", "[24]"])
    }

    func testMisshapenProjectionNamesExpectedAndFound() throws {
        try rewriteWeights { name, shape, values in
            name == "visual_projection.weight"
                ? (name, [12, 16], values) : (name, shape, values)
        }
        assertFails(
            load,
            containing: ["visual_projection.weight", "expected shape [8, 24]", "found [12, 16]"])
    }

    func testBadSectionKeyIsNamedWithItsSection() throws {
        try edit("config.json", #""hidden_act": "gelu""#, #""hidden_act": "relu""#)
        assertFails(
            load,
            containing: [scratch + "/config.json", "vision_config.hidden_act", "relu"])
    }

    func testMissingVisionConfigIsNamed() throws {
        try edit("config.json", #""vision_config""#, #""vision_settings""#)
        assertFails(load, containing: ["config.json", "'vision_config'", "missing"])
    }

    func testUnsupportedSizeIsRefused() throws {
        try edit(
            "preprocessor_config.json", #""shortest_edge": 24"#,
            #""shortest_edge": 24, "longest_edge": 40"#)
        let path = scratch + "/preprocessor_config.json"
        assertFails(
            { _ = try CLIPImageProcessor(file: path) },
            containing: [path, "size.longest_edge", "not supported"])
    }

    func testUnsupportedResampleFilterIsRefused() throws {
        try edit("preprocessor_config.json", #""resample": 3"#, #""resample": 1"#)
        let path = scratch + "/preprocessor_config.json"
        assertFails(
            { _ = try CLIPImageProcessor(file: path) },
            containing: [path, "resample", "bicubic", "found 1"])
    }
}
