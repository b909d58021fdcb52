import Diffusion
import Formats
import Foundation
import Tensor
import TestSupport
import XCTest

/// UNet weights files (partial diffusers UNet state_dicts, as ESD and UCE release their
/// models) against diffusers on the pipeline fixture's UNet
/// (tools/make_unet_weights_fixture.py): the file's values loaded with `load_state_dict`,
/// two files stacked at weights 1 and 0.5, and a file with a LoRA from diffusers'
/// `load_lora_weights`.
final class UNetWeightsFileTests: XCTestCase {
    static let folder = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
        .appendingPathComponent("unet-weights").path
    static let edit = folder + "/edit.safetensors"
    static let edit2 = folder + "/edit2.safetensors"
    static let lora = LoRAStackTests.folder + "/a.safetensors"
    static let unetFolder = ModelParityTests.models + "/pipeline/unet"

    let scratch = FileManager.default.temporaryDirectory
        .appendingPathComponent("duo-unet-weights-\(UUID().uuidString)").path

    override func setUpWithError() throws {
        try FileManager.default.createDirectory(
            atPath: scratch, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: scratch) }

    func reference(_ name: String) throws -> [Float] {
        try SafeTensorsReader(path: Self.folder + "/reference.safetensors").floats(name)
    }

    func run(_ unet: UNet2DConditionModel) throws -> Tensor {
        let file = try SafeTensorsReader(path: Self.folder + "/reference.safetensors")
        let sample = Tensor(try file.floats("sample"), shape: try file.info("sample").shape)
        let context = Tensor(try file.floats("context"), shape: try file.info("context").shape)
        let timesteps = try file.floats("timesteps")
        return GradMode.withNoGrad { unet(sample, timesteps: timesteps, context: context) }
    }

    func output(_ files: [AdapterFile]) throws -> Tensor {
        let unet = try UNet2DConditionModel.load(directory: Self.unetFolder)
        _ = try LoRAFile.load(files, into: unet)
        return try run(unet)
    }

    func testAWeightsFileMatchesDiffusersLoadingItsValues() throws {
        // The same tolerance as the UNet's own parity (ModelParityTests).
        assertClose(
            try output([AdapterFile(path: Self.edit)]), try reference("output_edit"), rtol: 0,
            atol: 1e-5, "UNet with edit's values (diffusers load_state_dict)")
    }

    func testTwoWeightsFilesStackAgainstTheBase() throws {
        let stacked = try output([
            AdapterFile(path: Self.edit), AdapterFile(path: Self.edit2, scale: 0.5),
        ])
        assertClose(
            stacked, try reference("output_stack"), rtol: 0, atol: 1e-5,
            "W_base + (W_edit - W_base) + 0.5 (W_edit2 - W_base)")
        let gap = zip(stacked.scalars, try reference("output_edit")).map { abs($0 - $1) }.max()!
        XCTAssertGreaterThan(gap, 1e-3, "edit2 changes the output: the stack test can fail")
    }

    func testAWeightsFileStacksWithALoRAInEitherOrder() throws {
        for files in [
            [AdapterFile(path: Self.edit), AdapterFile(path: Self.lora)],
            [AdapterFile(path: Self.lora), AdapterFile(path: Self.edit)],
        ] {
            assertClose(
                try output(files), try reference("output_edit_lora"), rtol: 0, atol: 1e-5,
                "edit + LoRA a (diffusers load_lora_weights on the edited UNet)")
        }
    }

    func testAWholeStateDictReadsAsThePartialFile() throws {
        // A release's whole state_dict: the base file's tensors with edit's values in place.
        let base = try SafeTensorsReader(
            path: Self.unetFolder + "/diffusion_pytorch_model.safetensors")
        let edit = try SafeTensorsReader(path: Self.edit)
        var writer = SafeTensorsWriter(metadata: ["format": "pt"])
        for info in base.tensors {
            let source = edit.contains(info.name) ? edit : base
            try writer.add(info.name, shape: info.shape, values: try source.floats(info.name))
        }
        let whole = scratch + "/whole.safetensors"
        try writer.write(to: whole)
        let unet = try UNet2DConditionModel.load(directory: Self.unetFolder)
        let set = try LoRAFile.load([AdapterFile(path: whole)], into: unet)
        XCTAssertEqual(Set(set.weightEdits.keys), Set(edit.names), "only changed keys are edited")
        assertClose(
            try run(unet), try reference("output_edit"), rtol: 0, atol: 1e-5,
            "UNet with the whole state_dict (diffusers load_state_dict of edit)")
    }

    func testDetachRestoresTheBaseExactlyAndMergeKeepsTheEdit() throws {
        let unet = try UNet2DConditionModel.load(directory: Self.unetFolder)
        let base = unet.namedParameters.map(\.1.scalars)
        let files = [AdapterFile(path: Self.edit), AdapterFile(path: Self.lora)]
        try LoRAFile.load(files, into: unet).detach(from: unet)
        XCTAssertEqual(unet.namedParameters.map(\.1.scalars), base, "detached: the base again")
        try LoRAFile.load(files, into: unet).merge(into: unet)
        assertClose(
            try run(unet), try reference("output_edit_lora"), rtol: 0, atol: 1e-5,
            "merged edit + LoRA (duo merge) against diffusers")
    }

    /// `duo attack unlearndiff` draws the original's images with the set detached, then
    /// merges the same set: the edit must come back with the LoRA on top of it.
    func testMergeAfterDetachKeepsTheEditUnderTheLoRA() throws {
        let unet = try UNet2DConditionModel.load(directory: Self.unetFolder)
        let base = unet.namedParameters.map(\.1.scalars)
        let set = try LoRAFile.load(
            [AdapterFile(path: Self.edit), AdapterFile(path: Self.lora)], into: unet)
        set.detach(from: unet)
        set.detach(from: unet)
        XCTAssertEqual(unet.namedParameters.map(\.1.scalars), base, "detached twice: the base")
        try set.merge(into: unet)
        assertClose(
            try run(unet), try reference("output_edit_lora"), rtol: 0, atol: 1e-5,
            "detached, then merged: edit + LoRA against diffusers")
        set.detach(from: unet)
        assertClose(
            try run(unet), try reference("output_edit_lora"), rtol: 0, atol: 1e-5,
            "a merge is for good: detaching afterwards changes nothing")
    }

    func testSaveWritesAReadableMarkedFileThatAppliesExactly() throws {
        let unet = try UNet2DConditionModel.load(directory: Self.unetFolder)
        let (key, parameter) = unet.namedParameters.first { $0.0.hasSuffix("attn2.to_k.weight") }!
        let new = Tensor(parameter.scalars.map { $0 * 2 + 0.25 }, shape: parameter.shape)
        let path = scratch + "/saved.safetensors"
        try UNetWeightsFile.save([(key, new)], to: path, metadata: ["method": "test"])
        let file = try SafeTensorsReader(path: path)
        XCTAssertEqual(file.names, [key])
        XCTAssertEqual(file.metadata["duo_content"], "unet-weights")
        XCTAssertEqual(file.metadata["method"], "test")
        XCTAssertEqual(try AdapterKind.of(path, unet: unet), .unetWeights)
        XCTAssertEqual(try AdapterKind.of(Self.lora, unet: unet), .lora)
        _ = try LoRAFile.load(path, into: unet)
        XCTAssertEqual(parameter.scalars, new.scalars, "scale 1 gives the file's values exactly")
    }

    // MARK: bad inputs

    func write(_ name: String, _ tensors: [(String, [Int], [Float])]) throws -> String {
        var writer = SafeTensorsWriter()
        for (key, shape, values) in tensors { try writer.add(key, shape: shape, values: values) }
        let path = scratch + "/" + name
        try writer.write(to: path)
        return path
    }

    func assertRefused(
        _ files: [AdapterFile], _ expected: String, line: UInt = #line
    ) throws {
        let unet = try UNet2DConditionModel.load(directory: Self.unetFolder)
        let base = unet.namedParameters.map(\.1.scalars)
        XCTAssertThrowsError(try LoRAFile.load(files, into: unet), line: line) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(expected), "expected '\(expected)' in: \(text)", line: line)
            XCTAssertFalse(text.contains("\n"), "one line: \(text)", line: line)
        }
        XCTAssertEqual(
            unet.namedParameters.map(\.1.scalars), base, "a refused file changes nothing",
            line: line)
        XCTAssertTrue(
            unet.attentionProjections.allSatisfy { $0.1.lora == nil }, "no LoRA is left attached",
            line: line)
    }

    func testFilesThatAreNeitherOrDoNotFitAreRefusedNamingFileAndKey() throws {
        let toK = "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight"
        let neither = try write(
            "neither.safetensors", [("text_model.final_layer_norm.weight", [2], [1, 1])])
        try assertRefused(
            [AdapterFile(path: neither)],
            "neither.safetensors: key 'text_model.final_layer_norm.weight': is neither a UNet LoRA weight"
        )
        let empty = try write("empty.safetensors", [])
        try assertRefused([AdapterFile(path: empty)], "empty.safetensors: holds no tensors")
        let stray = try write(
            "stray.safetensors",
            [(toK, [16, 32], .init(repeating: 0, count: 512)), ("lm_head.weight", [1], [0])])
        try assertRefused(
            [AdapterFile(path: stray)],
            "stray.safetensors: key 'lm_head.weight': is not a parameter of this UNet")
        let misshapen = try write(
            "misshapen.safetensors", [(toK, [32, 16], .init(repeating: 0, count: 512))])
        try assertRefused(
            [AdapterFile(path: misshapen)],
            "misshapen.safetensors: key '\(toK)': expected shape [16, 32], found [32, 16]")
        let nan = try write(
            "nan.safetensors", [(toK, [16, 32], .init(repeating: .nan, count: 512))])
        try assertRefused([AdapterFile(path: nan)], "nan.safetensors: key '\(toK)': holds NaN")
        // A good file after a bad one: nothing of either is applied.
        try assertRefused(
            [AdapterFile(path: Self.edit), AdapterFile(path: Self.lora), AdapterFile(path: nan)],
            "holds NaN")
        try assertRefused(
            [AdapterFile(path: Self.edit, scale: .infinity)], "cannot be applied at scale inf")
        let huge = try write(
            "huge.safetensors", [(toK, [16, 32], .init(repeating: 3e38, count: 512))])
        try assertRefused(
            [AdapterFile(path: huge), AdapterFile(path: huge)],
            "huge.safetensors + \(scratch)/huge.safetensors: key '\(toK)': applying at scale(s) [1.0, 1.0] gives non-finite weights"
        )
    }
}
