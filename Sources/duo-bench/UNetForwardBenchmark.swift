import Diffusion
import Foundation
import Tensor

/// A UNet's forward pass without gradients, the work of every sampling step, against
/// diffusers' on the same folder and against this machine's large-GEMM rate in the same run:
/// how near the arithmetic peak inference runs. The FLOPs are PyTorch's count of the
/// direct convolutions, linear layers and attention products (tools/peer_unet_forward.py),
/// so the rate is that of the plain algorithm; Winograd convolutions do fewer multiplies.
func runUNetForwardBenchmark(directory: String, python: String?) {
    let (batch, tokens) = (16, 24)
    print("# UNet forward, no gradients, batch \(batch), \(tokens) text tokens (\(directory))")
    let unet: UNet2DConditionModel
    do {
        unet = try UNet2DConditionModel.load(directory: directory)
    } catch {
        print("error: \(error)")
        exit(1)
    }
    let config = unet.config
    let sample = Tensor.randn(
        [batch, config.inChannels, config.sampleSize, config.sampleSize], key: RandomKey(seed: 1))
    let context = Tensor.randn([batch, tokens, config.crossAttentionDim], key: RandomKey(seed: 2))
    let timesteps = [Float](repeating: 500, count: batch)
    let seconds = time(repeats: 5) {
        _ = GradMode.withNoGrad { unet(sample, timesteps: timesteps, context: context) }
    }
    row("duo forward (best of 5)", seconds * 1000, "ms")
    let cores = ProcessInfo.processInfo.activeProcessorCount
    let square = sgemmGFLOPs(m: 1024, n: 1024, k: 1024)
    row("OpenBLAS sgemm, square 1024, \(cores) threads", square, "GFLOP/s")
    guard let python,
        let line = runPeer(
            python, ["tools/peer_unet_forward.py", directory, "\(batch)", "\(tokens)"])
    else { return }
    // "diffusers FLOPS SECONDS"
    let fields = line.split(separator: " ")
    guard fields.count == 3, let flops = Double(fields[1]), let peerSeconds = Double(fields[2])
    else { return }
    let rate = gflops(flops, seconds)
    row(
        "duo, counted FLOPs per second", rate, "GFLOP/s",
        String(format: "%.0f%% of the square sgemm's rate", 100 * rate / square))
    row(
        "diffusers (PyTorch, 2 threads) forward (best of 5)", peerSeconds * 1000, "ms",
        String(
            format: "%.1f GFLOP/s; duo is %.2fx as fast", gflops(flops, peerSeconds),
            peerSeconds / seconds))
}
