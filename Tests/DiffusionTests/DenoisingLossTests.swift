import Diffusion
import Foundation
import Tensor
import XCTest

final class DenoisingLossTests: XCTestCase {
    func testLossIsTheNoiseRegressionErrorAndTrainingLowersIt() throws {
        let models = ModelParityTests.models
        let unet = try UNet2DConditionModel.load(directory: models + "/pipeline/unet")
        let scheduler = try DDPMScheduler(
            contentsOf: models + "/pipeline/scheduler/scheduler_config.json")
        let x0 = Tensor.randn([4, 4, 8, 8], key: RandomKey(seed: 1)) * 0.5
        let context = Tensor.randn([4, 3, 32], key: RandomKey(seed: 2))

        // The same key gives the same loss.
        let key = RandomKey(seed: 3)
        let full = GradMode.withNoGrad {
            DenoisingLoss.loss(unet: unet, x0: x0, context: context, scheduler: scheduler, key: key)
        }
        XCTAssertEqual(
            full.item,
            GradMode.withNoGrad {
                DenoisingLoss.loss(
                    unet: unet, x0: x0, context: context, scheduler: scheduler, key: key)
            }.item)

        unet.setTrainable(true)
        let optimizer = AdamW(parameters: unet.parameters, options: .init(weightDecay: 0))
        var losses: [Float] = []
        for step in 0..<30 {
            // A fixed key: the same noise and timesteps each step, so the loss can only fall.
            let loss = DenoisingLoss.loss(
                unet: unet, x0: x0, context: context, scheduler: scheduler, key: key)
            optimizer.zeroGrad()
            loss.backward()
            optimizer.update(learningRate: 1e-3)
            losses.append(loss.item)
            _ = step
        }
        // 30 AdamW steps on one fixed batch: well below where it started (measured: 1.09 -> 0.56).
        XCTAssertLessThan(
            losses.last!, 0.7 * losses.first!, "losses \(losses.first!) -> \(losses.last!)")
    }
}
