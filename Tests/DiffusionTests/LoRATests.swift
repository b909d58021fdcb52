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

    /// Checkpointed resnets and transformers give the same loss and the trained adapters the
    /// gradients of the whole graph (to float32 summation order); the base stays frozen.
    func testGradientCheckpointingGivesTheSameGradients() throws {
        let unet = try UNet2DConditionModel.load(
            directory: ModelParityTests.models + "/pipeline/unet")
        let lora = LoRASet.inject(
            into: unet, targets: [.selfAttention, .crossAttention, .convs], rank: 2, alpha: 2,
            key: RandomKey(seed: 5))
        for (i, (_, adapter)) in lora.adapters.enumerated() {
            adapter.up.assign(Tensor.randn(adapter.up.shape, key: RandomKey(seed: UInt64(i))) * 0.1)
        }
        let sample = Tensor.randn([2, 4, 8, 8], key: RandomKey(seed: 6))
        let context = Tensor.randn([2, 3, 32], key: RandomKey(seed: 7))
        let parameters = lora.adapters.flatMap { [$0.1.down, $0.1.up] }
        func run() -> (loss: Float, gradients: [[Float]?]) {
            let out = unet(sample, timesteps: [10, 600], context: context)
            let loss = mean(out * out)
            return (loss.item, loss.gradients(for: parameters).map { $0?.scalars })
        }
        let whole = run()
        unet.gradientCheckpointing = true
        let checkpointed = run()
        unet.gradientCheckpointing = false
        XCTAssertEqual(checkpointed.loss, whole.loss)
        XCTAssertTrue(checkpointed.gradients.allSatisfy { $0 != nil })
        for (i, (a, b)) in zip(whole.gradients, checkpointed.gradients).enumerated() {
            // The forward values are the same bits; gradients reaching a block's input from
            // inside it and from its skip are summed in another order: float32 rounding.
            let (a, b) = (a ?? [], b ?? [])
            let difference = zip(a, b).reduce(0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
            let norm = a.reduce(0) { $0 + Double($1) * Double($1) }
            XCTAssertLessThanOrEqual(
                difference.squareRoot(), 1e-5 * norm.squareRoot(), lora.adapters[i / 2].0)
        }
        XCTAssertTrue(unet.parameters.allSatisfy { $0.grad == nil }, "the base stays frozen")
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
