import Diffusion
import Foundation
import Tensor

/// duo against diffusers on the same tiny model folder: 20 DDIM steps with guidance at
/// 32x32, from the same token ids (tools/peer_sampling.py is the peer), best of 5.
func runSamplingBenchmark(directory: String, python: String?) {
    let (steps, size, repeats) = (20, 32, 5)
    print("# sampling: \(steps) DDIM steps, guidance 7.5, \(size)x\(size), batch 1 (\(directory))")
    let seconds: Double
    do {
        let encoder = try CLIPTextModel.load(directory: directory + "/text_encoder")
        let unet = try UNet2DConditionModel.load(directory: directory + "/unet")
        let vae = try AutoencoderKL.load(directory: directory + "/vae")
        var scheduler = try DDIMScheduler(
            contentsOf: directory + "/scheduler/scheduler_config.json")
        try scheduler.setTimesteps(steps)
        let stepper = scheduler
        let (condition, unconditional) = GradMode.withNoGrad {
            (
                encoder([[998, 7, 8, 9, 999, 999, 999, 999]]),
                encoder([[998] + Array(repeating: 999, count: 7)])
            )
        }
        let factor = 1 << (vae.config.blockOutChannels.count - 1)
        let latents = Tensor.randn(
            [1, unet.config.inChannels, size / factor, size / factor], key: RandomKey(seed: 0))
        seconds = time(repeats: repeats) {
            let final = GuidedDenoising.run(
                unet: unet, latents: latents, condition: condition, unconditional: unconditional,
                guidance: 7.5, timesteps: stepper.timesteps
            ) { sample, noise, t, _ in
                stepper.step(modelOutput: noise, timestep: t, sample: sample, varianceNoise: nil)
                    .prevSample
            }
            _ = GradMode.withNoGrad {
                GuidedDenoising.toUnitRange(vae.decode(final / vae.config.scalingFactor))
            }
        }
    } catch {
        print("error: \(error)")
        exit(1)
    }
    row("duo, per image", seconds * 1000, "ms")
    guard let python else { return }
    guard
        let line = runPeer(
            python, ["tools/peer_sampling.py", directory, "\(steps)", "\(size)", "\(repeats)"]),
        let peerSeconds = Double(line.split(separator: " ")[1])
    else { return }
    row(
        "diffusers (PyTorch, 2 threads), per image", peerSeconds * 1000, "ms",
        String(format: "duo is %.1fx faster", peerSeconds / seconds))
}

/// Runs a peer script and returns its last line starting with "diffusers ".
func runPeer(_ python: String, _ arguments: [String]) -> String? {
    let peer = Process()
    peer.executableURL = URL(fileURLWithPath: python)
    peer.arguments = arguments
    let pipe = Pipe()
    peer.standardOutput = pipe
    peer.standardError = FileHandle.nullDevice
    do { try peer.run() } catch {
        print("peer: \(error)")
        return nil
    }
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    peer.waitUntilExit()
    guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("diffusers ") })
    else {
        print("peer: no result (\(output.suffix(200)))")
        return nil
    }
    return String(line)
}
