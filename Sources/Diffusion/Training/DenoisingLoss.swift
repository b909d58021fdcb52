import Tensor

/// The diffusion training objective (Ho et al. 2020, eq. 14, "L_simple"): noise a clean
/// sample to a random timestep and regress the UNet's output on the noise (or on the
/// velocity for v-prediction models, Salimans & Ho 2022).
public enum DenoisingLoss {
    /// x0: clean samples [B, C, H, W]; context: text states [B, S, D] (nil for a UNet
    /// without cross-attention). Sample i draws its noise and timestep from
    /// `key.fold(in: i)`, so it does not depend on the batch it is in.
    public static func loss(
        unet: UNet2DConditionModel, x0: Tensor, context: Tensor?, scheduler: DiffusionScheduler,
        key: RandomKey
    ) -> Tensor {
        let batch = x0.shape[0]
        let sampleShape = [1] + Array(x0.shape.dropFirst())
        let keys = (0..<batch).map { key.fold(in: UInt64($0)).split(2) }
        let noise = concat(keys.map { Tensor.randn(sampleShape, key: $0[0]) }, axis: 0)
        let timesteps = keys.map { k -> Int in
            let u = k[1].uniform(count: 1)[0]
            return min(Int(u * Float(scheduler.numTrainTimesteps)), scheduler.numTrainTimesteps - 1)
        }
        let noisy = scheduler.addNoise(original: x0, noise: noise, timesteps: timesteps)
        let prediction = unet(noisy, timesteps: timesteps.map(Float.init), context: context)
        let target: Tensor
        switch scheduler.config.predictionType {
        case .epsilon: target = noise
        case .vPrediction:
            target = scheduler.velocity(sample: x0, noise: noise, timesteps: timesteps)
        case .sample: target = x0
        }
        let difference = prediction - target
        return mean(difference * difference)
    }
}
