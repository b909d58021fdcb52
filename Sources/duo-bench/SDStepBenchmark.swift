import Diffusion
import Foundation
import Tensor
import Unlearning

/// One DUO step on a full-size Stable Diffusion 1.x pipeline folder (tools/make_sd_pipeline.py):
/// DUO's settings (LoRA rank 32 on self-attention, batch 4 pairs, the output-preserving
/// term), 512x512 pairs through the VAE, with activation checkpointing, in bf16 mixed
/// precision where the CPU has AVX512-BF16 (float32 elsewhere). Reports each step's seconds
/// and the process's peak resident memory, the figure that must stay under 24 GB.
func runSDStepBenchmark(directory: String, steps: Int) {
    BLAS.mixedPrecision = BF16GEMM.isNative
    print(
        "# DUO step on \(directory): LoRA rank 32 on self-attention, batch 4 pairs, 512x512, "
            + "gradient checkpointing, \(BLAS.mixedPrecision ? "bf16 mixed precision" : "float32")")
    do {
        let model = try StableDiffusion.load(directory: directory)
        model.unet.gradientCheckpointing = true
        let key = RandomKey(seed: 1)
        let pairs = PairData(
            safe: Tensor.uniform([4, 3, 512, 512], low: -1, high: 1, key: key.fold(in: 1)),
            unsafe: Tensor.uniform([4, 3, 512, 512], low: -1, high: 1, key: key.fold(in: 2)),
            unsafePrompts: Array(repeating: "a photo", count: 4))
        var settings = UnlearningSettings()
        settings.steps = steps
        settings.checkpointEvery = 1_000_000
        let folder = NSTemporaryDirectory() + "duo-bench-sd-step-\(getpid())"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let trainer = try UnlearningTrainer(
            model: model, pairs: pairs, settings: settings, directory: folder, identity: [])
        try trainer.train(resume: false) { log in
            row(
                "step \(log.step)", log.seconds, "s",
                String(
                    format: "loss %.4f, new memory %.1f GB so far", log.value("loss"),
                    Double(BufferPool.shared.freshBytes) / 1e9))
            return true
        }
    } catch {
        print("error: \(error)")
        exit(1)
    }
    row("peak RSS", peakResidentBytes() / 1e9, "GB", "goal <= 24 GB")
}
