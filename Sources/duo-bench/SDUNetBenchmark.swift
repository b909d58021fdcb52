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
    func forwardBest(mixedPrecision: Bool) -> (seconds: Double, output: Tensor) {
        BLAS.mixedPrecision = mixedPrecision
        defer { BLAS.mixedPrecision = false }
        var output = Tensor.zeros([1])
        let seconds = time(repeats: 2) {
            output = GradMode.withNoGrad { unet(sample, timesteps: [500, 500], context: context) }
        }
        return (seconds, output)
    }
    let fp32 = forwardBest(mixedPrecision: false)
    row("forward fp32, 64x64 latents, batch 2 (best of 2)", fp32.seconds, "s")
    var bf16: Double?
    if BF16GEMM.isNative {
        let mixed = forwardBest(mixedPrecision: true)
        bf16 = mixed.seconds
        row(
            "forward bf16 GEMMs (best of 2)", mixed.seconds, "s",
            String(
                format: "%.2fx fp32's speed; relative error %.4f (Frobenius, against fp32)",
                fp32.seconds / mixed.seconds, relativeError(mixed.output, fp32.output)))
    } else {
        print("forward bf16: this CPU has no AVX512-BF16")
    }
    row("peak RSS after forward", peakResidentBytes() / 1e9, "GB")
    // diffusers on the same folder, in its own process (tools/peer_sd_unet.py).
    guard let python, let line = runPeer(python, ["tools/peer_sd_unet.py", directory]) else {
        return
    }
    // "diffusers load L forward F forward_bf16 B"
    let fields = line.split(separator: " ")
    guard fields.count == 7, let peerLoad = Double(fields[2]), let peerForward = Double(fields[4]),
        let peerBF16 = Double(fields[6])
    else { return }
    row(
        "diffusers (PyTorch, 2 threads) load", peerLoad, "s",
        String(format: "duo/diffusers %.2f", loadSeconds / peerLoad))
    row(
        "diffusers fp32 forward (best of 2)", peerForward, "s",
        String(format: "duo fp32 is %.2fx as fast", peerForward / fp32.seconds))
    row(
        "diffusers bf16 autocast forward (best of 2)", peerBF16, "s",
        bf16.map { String(format: "duo bf16 is %.2fx as fast", peerBF16 / $0) } ?? "")
}

/// ‖a − b‖ / ‖b‖.
func relativeError(_ a: Tensor, _ b: Tensor) -> Double {
    let x = a.scalars
    let y = b.scalars
    var difference = 0.0
    var norm = 0.0
    for (u, v) in zip(x, y) {
        difference += Double(u - v) * Double(u - v)
        norm += Double(v) * Double(v)
    }
    return (difference / norm).squareRoot()
}
