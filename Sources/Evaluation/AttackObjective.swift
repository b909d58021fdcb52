import Diffusion
import Tensor
import Unlearning

/// The white-box attacks' objective: the attacked UNet's own diffusion loss on images that
/// show the concept, for a given text conditioning (UnlearnDiffAtk optimizes a prefix,
/// Concept Inversion a token embedding, through it).
struct AttackObjective {
    let unet: UNet2DConditionModel
    let schedule: NoiseSchedule
    let predictionType: SchedulerConfig.PredictionType

    /// The noise schedule and prediction type `model` was trained with.
    init(model: StableDiffusion) throws {
        let config = try SchedulerConfig(contentsOf: model.schedulerConfigPath, for: .ddpm)
        unet = model.unet
        schedule = NoiseSchedule(config: config)
        predictionType = config.predictionType
    }

    /// Mean squared error of the UNet's prediction on `x0` [B, C, h, w] noised with one
    /// timestep (uniform over the training range) and noise draw per image, from `key`.
    func loss(_ x0: Tensor, context: Tensor, key: RandomKey) -> Tensor {
        let n = x0.shape[0]
        let noise = Tensor.randn(x0.shape, key: key.fold(in: 1))
        let timesteps = key.fold(in: 2).uniform(count: n).map { min(Int($0 * Float(schedule.numTrainTimesteps)), schedule.numTrainTimesteps - 1) }
        let noisy = schedule.addNoise(original: x0, noise: noise, timesteps: timesteps)
        let prediction = unet(noisy, timesteps: timesteps.map(Float.init), context: context)
        let difference = prediction - DUOLoss.target(schedule, predictionType, x0, noise, timesteps)
        return mean(difference * difference)
    }
}
