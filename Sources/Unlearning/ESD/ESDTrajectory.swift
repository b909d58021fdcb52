import Diffusion
import Foundation
import Tensor

/// Where ESD's x_t comes from (rohitgandikota/erasing at b8aeab6, train-esd.py l.226-237):
/// the model being trained samples the concept's prompt with classifier-free guidance
/// (start guidance 3) by DDIM (50 steps, η 0) from fresh noise, stopping part way at a
/// DDIM index t_enc drawn uniformly from [0, ddim_steps); the loss then evaluates the
/// models at a DDPM timestep drawn uniformly from t_enc's bin of the training timesteps,
/// [round(t_enc/N · 1000), round((t_enc+1)/N · 1000)). Every timestep can be drawn: the
/// whole schedule is trained.
///
/// The reference's sampler (ldm/models/diffusion/ddim.py l.135-196, called with
/// `t_start=-1` and `till_T=t_enc`) drops the last of its 50 timesteps (1, 21, ..., 981)
/// before it starts, so it begins at 961 from pure noise, and stops after the step at
/// DDIM index max(t_enc, 1) − 1: in diffusers' order (981 first) it runs the timesteps at
/// positions 1 ... N − max(t_enc, 1), and from t_enc 2 on x_t ends about two DDIM steps
/// less noisy than t_enc's bin (fully sampled for t_enc 0 and 1). That is the reference's
/// x_t, and duo's. diffusers' DDIMScheduler over SD 1.x's
/// config (leading spacing, steps_offset 1, set_alpha_to_one false) takes the same
/// timesteps and ᾱ as that sampler; tools/make_esd_reference_fixture.py checks both.
public enum ESDTrajectory {
    /// One iteration's draws: the DDIM index the sampling stops at, the DDPM timestep the
    /// loss is evaluated at, and the sampling's initial noise.
    public struct Draw {
        public var tEnc: Int
        public var timestep: Int
        public var startCode: Tensor

        public init(tEnc: Int, timestep: Int, startCode: Tensor) {
            self.tEnc = tEnc
            self.timestep = timestep
            self.startCode = startCode
        }
    }

    /// The DDPM timesteps of DDIM index `tEnc` (train-esd.py l.228-229; Python's `round`,
    /// half to even, of the float64 `(t_enc / ddim_steps) * T`).
    public static func timestepBin(tEnc: Int, ddimSteps: Int, trainTimesteps: Int) -> Range<Int> {
        func edge(_ index: Int) -> Int {
            Int(
                (Double(index) / Double(ddimSteps) * Double(trainTimesteps)).rounded(
                    .toNearestOrEven))
        }
        return edge(tEnc)..<edge(tEnc + 1)
    }

    /// The draws of an iteration from `key`: t_enc uniform over the DDIM indices, the
    /// timestep uniform in its bin, standard normal noise of `shape` ([1, C, h, w]).
    public static func draw(ddimSteps: Int, trainTimesteps: Int, shape: [Int], key: RandomKey)
        -> Draw
    {
        let u = key.fold(in: 1).uniform(count: 2)
        let tEnc = min(Int(u[0] * Float(ddimSteps)), ddimSteps - 1)
        let bin = timestepBin(tEnc: tEnc, ddimSteps: ddimSteps, trainTimesteps: trainTimesteps)
        let timestep = bin.lowerBound + min(Int(u[1] * Float(bin.count)), bin.count - 1)
        return Draw(
            tEnc: tEnc, timestep: timestep, startCode: Tensor.randn(shape, key: key.fold(in: 2)))
    }

    /// The DDIM timesteps the reference's sampler runs before stopping at `tEnc`, from the
    /// scheduler's list of `ddimSteps` (noisiest first): positions 1 ... N − max(tEnc, 1).
    public static func samplingTimesteps(tEnc: Int, schedulerTimesteps: [Int]) -> [Int] {
        let n = schedulerTimesteps.count
        precondition((0..<n).contains(tEnc), "t_enc \(tEnc) outside [0, \(n))")
        return Array(schedulerTimesteps[1...(n - max(tEnc, 1))])
    }

    /// x_t of `draw`: the UNet as it is now (the model being trained) samples `concept`
    /// with guidance `guidance` against `empty` by `scheduler` (DDIM, `setTimesteps(N)`
    /// done), without recording gradients. concept, empty: [1, S, D] -> [1, C, h, w].
    public static func sample(
        unet: UNet2DConditionModel, scheduler: DDIMScheduler, draw: Draw, concept: Tensor,
        empty: Tensor, guidance: Float
    ) -> Tensor {
        let timesteps = samplingTimesteps(tEnc: draw.tEnc, schedulerTimesteps: scheduler.timesteps)
        return GuidedDenoising.run(
            unet: unet, latents: draw.startCode, condition: concept, unconditional: empty,
            guidance: guidance, timesteps: timesteps,
            step: { sample, noise, t, _ in
                scheduler.step(modelOutput: noise, timestep: t, sample: sample).prevSample
            })
    }
}
