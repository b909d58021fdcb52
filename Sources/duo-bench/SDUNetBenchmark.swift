import Diffusion
import Foundation
import Tensor

/// Peak resident memory of this process so far, in bytes (Linux reports KiB).
func peakResidentBytes() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) * 1024
}

/// Loads a full-size SD 1.x UNet from fp16 safetensors (tools/make_sd_unet.py) and runs
/// one forward pass at 64x64 latents, batch 2.
func runSDUNetBenchmark(directory: String, python: String?) {
    print("# SD 1.x UNet from fp16 safetensors (\(directory))")
    let start = Date()
    let unet: UNet2DConditionModel
    do {
        unet = try UNet2DConditionModel.load(directory: directory)
    } catch {
        print("error: \(error)")
        exit(1)
    }
    let loadSeconds = Date().timeIntervalSince(start)
    let fp32Bytes = Double(unet.parameterCount * 4)
    let peak = peakResidentBytes()
    row("load time", loadSeconds, "s", "\(unet.parameterCount) parameters")
    row(
        "peak RSS after load", peak / 1e9, "GB",
        String(format: "%.2fx the fp32 weight bytes (goal <= 1.3x)", peak / fp32Bytes))
    let sample = Tensor.randn([2, 4, 64, 64], key: RandomKey(seed: 1))
    let context = Tensor.randn([2, 77, 768], key: RandomKey(seed: 2))
    let forward = time(repeats: 1) {
        _ = GradMode.withNoGrad { unet(sample, timesteps: [500, 500], context: context) }
    }
    row("forward, 64x64 latents, batch 2", forward, "s")
    row("peak RSS after forward", peakResidentBytes() / 1e9, "GB")
    // diffusers on the same folder, in its own process (tools/peer_sd_unet.py).
    guard let python, let line = runPeer(python, ["tools/peer_sd_unet.py", directory]) else {
        return
    }
    let fields = line.split(separator: " ")
    guard fields.count == 5, let peerLoad = Double(fields[2]), let peerForward = Double(fields[4])
    else { return }
    row(
        "diffusers (PyTorch, 2 threads) load", peerLoad, "s",
        String(format: "duo/diffusers %.2f", loadSeconds / peerLoad))
    row(
        "diffusers (PyTorch, 2 threads) forward", peerForward, "s",
        String(format: "duo is %.2fx as fast", peerForward / forward))
}
