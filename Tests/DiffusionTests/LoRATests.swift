import Diffusion
import Formats
import Foundation
import Tensor
import TestSupport
import XCTest

final class LoRATests: XCTestCase {
    func testAdaptersStartAtTheBaseModelAndSwitchOffExactly() throws {
        let unet = try UNet2DConditionModel.load(
            directory: ModelParityTests.models + "/pipeline/unet")
        let sample = Tensor.randn([1, 4, 8, 8], key: RandomKey(seed: 1))
        let context = Tensor.randn([1, 3, 32], key: RandomKey(seed: 2))
        let base = GradMode.withNoGrad { unet(sample, timesteps: [100], context: context) }.scalars

        let lora = LoRASet.inject(into: unet, rank: 2, alpha: 2, key: RandomKey(seed: 3))
        // transformers: 1 in down block 0, 1 in the middle, 2 in up block 1
        XCTAssertEqual(
            lora.adapters.count, 4 * 2 * 4, "q, k, v, out of attn1 and attn2 in 4 transformers")
        XCTAssertTrue(
            lora.adapters.contains {
                $0.0 == "up_blocks.1.attentions.1.transformer_blocks.0.attn2.to_k"
            })
        let fresh = GradMode.withNoGrad { unet(sample, timesteps: [100], context: context) }.scalars
        // Exact here and below: the same input through the same shapes, plus exact zeros.
        XCTAssertEqual(fresh, base, "up = 0: a fresh adapter changes nothing")

        for (_, adapter) in lora.adapters {
            adapter.up.assign(Tensor.randn(adapter.up.shape, key: RandomKey(seed: 4)) * 0.1)
        }
        let adapted = GradMode.withNoGrad { unet(sample, timesteps: [100], context: context) }
            .scalars
        XCTAssertNotEqual(adapted, base)
        let reference = lora.withDisabled {
            GradMode.withNoGrad { unet(sample, timesteps: [100], context: context) }
        }
        XCTAssertEqual(reference.scalars, base, "adapters off: the base model, bit for bit")
    }

    func testSwitchingAdaptersOffHoldsOnTheCallingThreadOnly() throws {
        // One shard's reference pass runs while another's trained pass needs the adapters.
        let unet = try UNet2DConditionModel.load(
            directory: ModelParityTests.models + "/pipeline/unet")
        let lora = LoRASet.inject(into: unet, rank: 2, alpha: 2, key: RandomKey(seed: 3))
        let adapter = lora.adapters[0].1
        let (here, elsewhere) = lora.withDisabled {
            (adapter.isEnabled, onAnotherThread { adapter.isEnabled })
        }
        XCTAssertFalse(here)
        XCTAssertTrue(elsewhere)
        XCTAssertTrue(adapter.isEnabled, "on again after withDisabled")
        // A split started with them off (sampling the reference model) keeps them off.
        let onWorkers = try lora.withDisabled { try valuesOnSplitWorkers { adapter.isEnabled } }
        XCTAssertEqual(onWorkers, [false])
    }

    func testOnlyAdaptersReceiveGradients() throws {
        let unet = try UNet2DConditionModel.load(
            directory: ModelParityTests.models + "/pipeline/unet")
        let lora = LoRASet.inject(into: unet, rank: 2, alpha: 2, key: RandomKey(seed: 5))
        let out = unet(
            Tensor.randn([1, 4, 8, 8], key: RandomKey(seed: 6)), timesteps: [10],
            context: Tensor.randn([1, 3, 32], key: RandomKey(seed: 7)))
        mean(out * out).backward()
        XCTAssertTrue(unet.parameters.allSatisfy { $0.grad == nil }, "the base stays frozen")
        // up = 0 at the start, so only `up` gets a non-zero gradient (dL/ddown = 0).
        XCTAssertTrue(lora.adapters.allSatisfy { $0.1.up.grad != nil && $0.1.down.grad != nil })
    }

    func testAdaptersRoundTripThroughSafetensors() throws {
        let unet = try UNet2DConditionModel.load(
            directory: ModelParityTests.models + "/pipeline/unet")
        let lora = LoRASet.inject(into: unet, rank: 2, alpha: 2, key: RandomKey(seed: 8))
        for (_, adapter) in lora.adapters {
            adapter.up.assign(Tensor.randn(adapter.up.shape, key: RandomKey(seed: 9)))
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "lora-\(UUID()).safetensors"
        ).path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try WeightLoading.save(lora, to: path, prefix: "unet.")
        let other = try UNet2DConditionModel.load(
            directory: ModelParityTests.models + "/pipeline/unet")
        let loaded = LoRASet.inject(into: other, rank: 2, alpha: 2, key: RandomKey(seed: 10))
        try WeightLoading.load(loaded, from: try SafeTensorsReader(path: path), prefix: "unet.")
        XCTAssertEqual(loaded.parameters.map(\.scalars), lora.parameters.map(\.scalars))
    }
}
