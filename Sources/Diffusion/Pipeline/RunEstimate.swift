import Foundation
import Tensor

/// How long a run on a large model will take, said before it starts: the run's UNet
/// passes counted in image-passes (one image through the UNet at one timestep) times the
/// time one takes on this machine, timed with a UNet pass at the run's latent size. The
/// UNet dominates every run on Stable Diffusion; the text encoder and VAE are left out.
public struct RunEstimate: Sendable {
    /// Seconds one image-pass takes here (a batch of two, halved: guidance's pair).
    public var secondsPerImagePass: Double
    public var latentHeight: Int
    public var latentWidth: Int

    /// Runs on a UNet this large are estimated before they start; smaller ones finish
    /// before an estimate would tell anything the progress line does not.
    public static let largeUNetParameters = 100_000_000

    /// Whether `model` is large enough to say how long a run takes.
    public static func isLarge(_ model: StableDiffusion) -> Bool {
        model.unet.parameterCount >= largeUNetParameters
    }

    /// Times one guided UNet pass (two images) at the model's sample size, or at
    /// `height` x `width` pixels.
    public static func timed(model: StableDiffusion, height: Int? = nil, width: Int? = nil)
        -> RunEstimate
    {
        let f = model.scaleFactor
        let h = (height ?? model.unet.config.sampleSize * f) / f
        let w = (width ?? model.unet.config.sampleSize * f) / f
        let latents = Tensor.zeros([2, model.unet.config.inChannels, h, w])
        let context = GradMode.withNoGrad { model.encode(["", ""]) }
        let start = Date()
        _ = GradMode.withNoGrad { model.unet(latents, timesteps: [500, 500], context: context) }
        let seconds = Date().timeIntervalSince(start) / 2
        return RunEstimate(secondsPerImagePass: seconds, latentHeight: h, latentWidth: w)
    }

    /// Image-passes of guided sampling: `images` images of `steps` steps, two UNet rows
    /// each (classifier-free guidance).
    public static func samplingPasses(images: Int, steps: Int) -> Int { images * steps * 2 }

    /// Image-passes of training on `rows` UNet rows per step: the forward pass, the
    /// backward pass (about twice a forward) and, for DPO, the frozen reference's forward.
    public static func trainingPasses(steps: Int, rows: Int, withReference: Bool) -> Int {
        steps * rows * (withReference ? 4 : 3)
    }

    /// "about 2 h 10 min (31,200 UNet image-passes of 0.25 s at 64x64 latents, timed now)".
    public func describe(passes: Int) -> String {
        let seconds = Double(passes) * secondsPerImagePass
        return "about \(Self.duration(seconds)) (\(passes) UNet image-passes of "
            + String(format: "%.2f s", secondsPerImagePass)
            + " at \(latentHeight)x\(latentWidth) latents, timed now; the UNet only)"
    }

    static func duration(_ seconds: Double) -> String {
        let minutes = Int((seconds / 60).rounded())
        if minutes < 1 { return "under a minute" }
        if minutes < 60 { return "\(minutes) min" }
        let hours = minutes / 60
        return hours < 48 ? "\(hours) h \(minutes % 60) min" : "\(hours / 24) days \(hours % 24) h"
    }
}
