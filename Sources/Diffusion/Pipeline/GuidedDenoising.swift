import Tensor

/// The denoising loop of text-to-image sampling with classifier-free guidance
/// (Ho & Salimans 2022, eq. 6): ε̃ = ε(x, ∅) + w (ε(x, c) − ε(x, ∅)), as diffusers'
/// StableDiffusionPipeline runs it. Scheduler-agnostic: it takes the timesteps and a step
/// function (x_t, ε̃, t) -> x_{t−1}.
public enum GuidedDenoising {
    /// latents: [B, C, h, w] at the first timestep; condition/unconditional: [1 or B, S, D]
    /// text states (unconditional nil or guidance 1: no guidance) -> latents at the end.
    public static func run(
        unet: UNet2DConditionModel, latents: Tensor, condition: Tensor, unconditional: Tensor?,
        guidance: Float, timesteps: [Int],
        step: (_ sample: Tensor, _ noisePrediction: Tensor, _ timestep: Int, _ index: Int) ->
            Tensor,
        progress: (Int) -> Void = { _ in }
    ) -> Tensor {
        let batch = latents.shape[0]
        let cond = repeatBatch(condition, to: batch)
        let guided = unconditional != nil && guidance != 1
        let uncond = guided ? repeatBatch(unconditional!, to: batch) : cond
        var x = latents
        for (index, t) in timesteps.enumerated() {
            x = GradMode.withNoGrad {
                var noise: Tensor
                if guided {
                    let (u, c) = bothHalves(
                        unet: unet, x: x, timestep: t, uncond: uncond, cond: cond)
                    noise = u + (c - u) * guidance
                } else {
                    noise = unet(
                        x, timesteps: Array(repeating: Float(t), count: batch), context: cond)
                }
                return step(x, noise, t, index)
            }
            progress(index + 1)
        }
        return x
    }

    /// ε(x, ∅) and ε(x, c). Inside a data-parallel shard (every thread busy) one UNet call
    /// takes both halves, unconditional first, as diffusers batches them, on x once (the
    /// UNet's shared samples: the layers before the first cross-attention run once for
    /// both). Outside one (a single image: ESD's trajectory, one `duo sample`) the halves
    /// run as two shards, one per thread, which on small models beats splitting each of one
    /// call's ops.
    static func bothHalves(
        unet: UNet2DConditionModel, x: Tensor, timestep: Int, uncond: Tensor, cond: Tensor
    ) -> (unconditional: Tensor, conditional: Tensor) {
        let batch = x.shape[0]
        if DataParallel.threadsAreFree(for: 2) {
            let halves = DataParallel.map(shards: 2) { i in
                unet(
                    x, timesteps: Array(repeating: Float(timestep), count: batch),
                    context: i == 0 ? uncond : cond)
            }
            return (halves[0], halves[1])
        }
        let prediction = unet(
            x, timesteps: Array(repeating: Float(timestep), count: batch),
            context: concat([uncond, cond], axis: 0))
        let halves = split(prediction, sizes: [batch, batch], axis: 0)
        return (halves[0], halves[1])
    }

    /// [1, S, D] repeated to [B, S, D]; [B, S, D] unchanged.
    public static func repeatBatch(_ states: Tensor, to batch: Int) -> Tensor {
        if states.shape[0] == batch { return states }
        precondition(states.shape[0] == 1, "text states \(states.shape) for a batch of \(batch)")
        return concat(Array(repeating: states, count: batch), axis: 0)
    }

    /// Model-space images in about [-1, 1] -> [0, 1] (diffusers' postprocessing).
    public static func toUnitRange(_ images: Tensor) -> Tensor {
        clamp(images * 0.5 + 0.5, min: 0, max: 1)
    }
}
