import Diffusion
import Tensor

/// ESD's negative-guidance objective (Gandikota et al. 2023, eq. 4/5), the baseline DUO is
/// compared with: the trained model, prompted with the concept, is pulled towards the
/// original's guidance *away* from it,
///
///   L = ‖εθ(x_t, c) − [εref(x_t, ∅) − η (εref(x_t, c) − εref(x_t, ∅))]‖².
///
/// ESD draws x_t by sampling the model with c part of the way; here x_t noises the unsafe
/// images of the pairs, which are that model's own samples for the concept's prompts, so
/// x_t has the same distribution at t without a sampling loop per step. ESD-u adapts the
/// non-cross-attention layers (here: the LoRA targets, self-attention by default).
public enum ESDLoss {
    /// x0: [B, C, h, w] images with the concept; concept, empty: [1 or B, S, D] prompts.
    public static func compute(
        unet: UNet2DConditionModel, lora: LoRASet, schedule: NoiseSchedule, x0: Tensor,
        noise: Tensor,
        timesteps: [Int], concept: Tensor, emptyPrompt: Tensor, eta: Float
    ) -> (loss: Tensor, mseTrained: Float, mseReference: Float) {
        let b = x0.shape[0]
        let noisy = schedule.addNoise(original: x0, noise: noise, timesteps: timesteps)
        let t = timesteps.map(Float.init)
        let conceptContext = GuidedDenoising.repeatBatch(concept, to: b)
        let emptyContext = GuidedDenoising.repeatBatch(emptyPrompt, to: b)
        let (guidedTarget, reference): (Tensor, Tensor) = lora.withDisabled {
            GradMode.withNoGrad {
                let both = unet(
                    concat([noisy, noisy], axis: 0), timesteps: t + t,
                    context: concat([emptyContext, conceptContext], axis: 0))
                let halves = split(both, sizes: [b, b], axis: 0)
                return (halves[0] - (halves[1] - halves[0]) * eta, halves[1])
            }
        }
        let prediction = unet(noisy, timesteps: t, context: conceptContext)
        let difference = prediction - guidedTarget
        let loss = mean(difference * difference)
        let mseReference = GradMode.withNoGrad {
            mean((reference - noise) * (reference - noise)).item
        }
        let mseTrained = GradMode.withNoGrad {
            mean((prediction - noise) * (prediction - noise)).item
        }
        return (loss, mseTrained, mseReference)
    }
}
