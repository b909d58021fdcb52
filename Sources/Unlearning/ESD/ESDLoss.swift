import Diffusion
import Tensor

/// ESD's negative-guidance objective (Gandikota et al. 2023, eq. 4/5; rohitgandikota/erasing
/// at b8aeab6, train-esd.py l.236-247): the trained model, prompted with the concept, is
/// pulled towards the original's guidance *away* from it,
///
///   L = ‖εθ(x_t, c) − [εref(x_t, ∅) − η (εref(x_t, c) − εref(x_t, ∅))]‖²  (mean, MSELoss),
///
/// with e_0 = εref(x_t, ∅), e_p = εref(x_t, c) from the frozen original and e_n = εθ(x_t, c).
/// x_t comes from the model's own partial sampling (`ESDTrajectory`).
public enum ESDLoss {
    public struct Terms {
        /// The loss, with its graph to the trained weights.
        public var loss: Tensor
        /// cos(e_n − e_0, e_p − e_0): 1 while the trained model guides towards the concept as
        /// the original does, falling towards −1 as it learns to guide away from it (the
        /// target's direction for η > 0). A run's health, logged, not trained on.
        public var guidanceCosine: Float
    }

    /// xt: [B, C, h, w] at `timesteps` (B values); concept, emptyPrompt: [1 or B, S, D].
    public static func compute(
        unet: UNet2DConditionModel, weights: ESDWeights, xt: Tensor, timesteps: [Int],
        concept: Tensor, emptyPrompt: Tensor, eta: Float
    ) -> Terms {
        let b = xt.shape[0]
        precondition(timesteps.count == b, "\(timesteps.count) timesteps for a batch of \(b)")
        let t = timesteps.map(Float.init)
        let conceptContext = GuidedDenoising.repeatBatch(concept, to: b)
        let emptyContext = GuidedDenoising.repeatBatch(emptyPrompt, to: b)
        let (e0, eP): (Tensor, Tensor) = weights.withOriginal {
            GradMode.withNoGrad {
                // Two shards, one per thread (one batched call inside a shard).
                if DataParallel.threadsAreFree(for: 2) {
                    let halves = DataParallel.map(shards: 2) {
                        unet(xt, timesteps: t, context: $0 == 0 ? emptyContext : conceptContext)
                    }
                    return (halves[0], halves[1])
                }
                let both = unet(
                    xt, timesteps: t, context: concat([emptyContext, conceptContext], axis: 0))
                let halves = split(both, sizes: [b, b], axis: 0)
                return (halves[0], halves[1])
            }
        }
        let target = GradMode.withNoGrad { e0 - (eP - e0) * eta }
        let eN = unet(xt, timesteps: t, context: conceptContext)
        let difference = eN - target
        let loss = mean(difference * difference)
        let cosine = GradMode.withNoGrad { cosineSimilarity(eN - e0, eP - e0) }
        return Terms(loss: loss, guidanceCosine: cosine)
    }

    /// cos of the angle between two tensors of one shape, flattened (0 when one is zero).
    static func cosineSimilarity(_ a: Tensor, _ b: Tensor) -> Float {
        let dot = sum(a * b).item
        let norms = (sum(a * a).item * sum(b * b).item).squareRoot()
        return norms > 0 ? dot / norms : 0
    }
}
