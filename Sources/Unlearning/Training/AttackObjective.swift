import Diffusion
import Tensor

/// The white-box attacks' objective: the attacked UNet's own diffusion loss on images that
/// show the concept, for a given text conditioning (UnlearnDiffAtk optimizes a prefix,
/// Concept Inversion a token embedding, AdvUnlearn's training-time attack a prefix embedding,
/// through it).
public struct AttackObjective {
    public let unet: UNet2DConditionModel
    public let schedule: NoiseSchedule
    public let predictionType: SchedulerConfig.PredictionType

    /// The noise schedule and prediction type `model` was trained with.
    public init(model: StableDiffusion) throws {
        let config = try SchedulerConfig(contentsOf: model.schedulerConfigPath, for: .ddpm)
        unet = model.unet
        schedule = NoiseSchedule(config: config)
        predictionType = config.predictionType
    }

    /// Mean squared error of the UNet's prediction on `x0` [B, C, h, w] noised with one
    /// timestep (uniform over the training range) and noise draw per image, from `key`;
    /// `context` is [1 or B, S, D]. Back-propagates it (into whatever `context` was made
    /// from) and returns its value.
    public func backward(_ x0: Tensor, context: Tensor, key: RandomKey) -> Float {
        let noise = Tensor.randn(x0.shape, key: key.fold(in: 1))
        let timesteps = key.fold(in: 2).uniform(count: x0.shape[0]).map {
            min(Int($0 * Float(schedule.numTrainTimesteps)), schedule.numTrainTimesteps - 1)
        }
        return backward(x0, context: context, noise: noise, timesteps: timesteps)
    }

    /// The same loss on `x0` noised with `noise` at `timesteps`, its gradient scaled by
    /// `scale` (1 / gradient accumulation steps, as accelerate's `backward` divides the
    /// loss); returns the unscaled value.
    ///
    /// The UNet passes run as two shards of the batch on their own threads (`DataParallel`)
    /// against a leaf copy of the context, whose summed gradient then flows back through
    /// the context's own graph (the text encoder) once.
    public func backward(
        _ x0: Tensor, context: Tensor, noise: Tensor, timesteps: [Int], scale: Float = 1
    ) -> Float {
        let n = x0.shape[0]
        let leaf = context.detached()
        leaf.requiresGrad = context.requiresGrad
        let shards = DataParallel.shardRanges(n, shards: DataParallel.shardCount)
        let values = DataParallel.backward(shards: shards.count, parameters: [leaf]) { i in
            let rows = shards[i]
            let shardContext =
                context.shape[0] == 1
                ? concat(Array(repeating: leaf, count: rows.count), axis: 0) : leaf.rows(rows)
            // The loss is a mean over the batch's images: a shard's share is its fraction.
            let loss =
                self.loss(
                    x0.rows(rows), context: shardContext, noise: noise.rows(rows),
                    timesteps: Array(timesteps[rows]))
                * (Float(rows.count) / Float(n))
            return (loss * scale, loss.item)
        }
        if let gradient = leaf.grad { context.backward(gradient) }
        return values.reduce(0, +)
    }

    /// The mean squared error of the prediction on `x0` noised with `noise` at `timesteps`.
    public func loss(_ x0: Tensor, context: Tensor, noise: Tensor, timesteps: [Int]) -> Tensor {
        let noisy = schedule.addNoise(original: x0, noise: noise, timesteps: timesteps)
        let prediction = unet(noisy, timesteps: timesteps.map(Float.init), context: context)
        let difference = prediction - DUOLoss.target(schedule, predictionType, x0, noise, timesteps)
        return mean(difference * difference)
    }
}
