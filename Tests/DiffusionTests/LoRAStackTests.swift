import Diffusion
import Formats
import Foundation
import Tensor
import TestSupport
import XCTest

/// Stacked adapters against diffusers' `set_adapters(["a", "b"], adapter_weights=[1, 0.5])`
/// on the pipeline fixture's UNet (tools/make_lora_stack_fixture.py): "a" adapts attn1 and
/// attn2 at rank 2, "b" attn1 only at rank 3, so some layers carry one adapter and some two.
final class LoRAStackTests: XCTestCase {
    static let folder = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
        .appendingPathComponent("lora-stack").path

    func reference(_ name: String) throws -> Tensor {
        let file = try SafeTensorsReader(path: Self.folder + "/reference.safetensors")
        return Tensor(try file.floats(name), shape: try file.info(name).shape)
    }

    func output(_ adapters: [AdapterFile]) throws -> Tensor {
        let unet = try UNet2DConditionModel.load(
            directory: ModelParityTests.models + "/pipeline/unet")
        _ = try LoRAFile.load(adapters, into: unet)
        return GradMode.withNoGrad {
            unet(
                try! reference("sample"), timesteps: try! reference("timesteps").scalars,
                context: try! reference("context"))
        }
    }

    func testTwoStackedAdaptersMatchDiffusersSetAdapters() throws {
        let stacked = try output([
            AdapterFile(path: Self.folder + "/a.safetensors"),
            AdapterFile(path: Self.folder + "/b.safetensors", scale: 0.5),
        ])
        // The same tolerance as the UNet's own parity (ModelParityTests): the adapters add
        // one low-rank product per layer to the weights.
        assertClose(
            stacked, try reference("output").scalars, rtol: 0, atol: 1e-5,
            "UNet with a + 0.5 b (diffusers set_adapters)")
    }

    func testOneAdapterAloneMatchesDiffusersAndDiffersFromTheStack() throws {
        let single = try output([AdapterFile(path: Self.folder + "/a.safetensors")])
        assertClose(
            single, try reference("output_a").scalars, rtol: 0, atol: 1e-5,
            "UNet with a alone (diffusers)")
        let gap = zip(single.scalars, try reference("output").scalars).map { abs($0 - $1) }.max()!
        XCTAssertGreaterThan(gap, 1e-3, "b changes the output: the stack test can fail")
    }

    func testStackedAdaptersMergeIntoTheWeightsAsTheyApply() throws {
        let files = [
            AdapterFile(path: Self.folder + "/a.safetensors"),
            AdapterFile(path: Self.folder + "/b.safetensors", scale: 0.5),
        ]
        let unet = try UNet2DConditionModel.load(
            directory: ModelParityTests.models + "/pipeline/unet")
        try LoRAFile.load(files, into: unet).merge(into: unet)
        let merged = GradMode.withNoGrad {
            unet(
                try! reference("sample"), timesteps: try! reference("timesteps").scalars,
                context: try! reference("context"))
        }
        assertClose(
            merged, try reference("output").scalars, rtol: 0, atol: 1e-5,
            "merged stack (duo merge) against diffusers")
    }
}
