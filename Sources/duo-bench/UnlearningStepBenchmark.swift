import Diffusion
import Foundation
import Tensor
import Unlearning

/// One DUO step on a world model folder (rank 32, batch 4 pairs: 12 UNet images with
/// gradients and 12 without) against the same step in PyTorch with peft
/// (tools/peer_duo_step.py): median seconds per step and peak memory. With DUO's settings
/// (LoRA on self-attention), then the model folder's own defaults (duo_defaults.json: self-attention and convs on
/// the embedded model).
func runUnlearningStepBenchmark(directory: String, python: String?) {
    runUnlearningStep(directory: directory, python: python, settings: UnlearningSettings())
    guard let defaults = try? ModelDefaults(directory: directory).unlearningSettings() else {
        print("error: \(directory)/\(ModelDefaults.fileName) is unreadable")
        return
    }
    runUnlearningStep(directory: directory, python: python, settings: defaults)
}

func runUnlearningStep(directory: String, python: String?, settings base: UnlearningSettings) {
    let steps = 12
    let targets = base.targetNames
    print(
        "# DUO step: \(directory), LoRA rank 32 on \(targets.joined(separator: " and ")), batch 4 pairs, \(steps) steps"
    )
    let seconds: Double
    do {
        let model = try StableDiffusion.load(directory: directory)
        let size = model.unet.config.sampleSize
        let key = RandomKey(seed: 1)
        let pairs = PairData(
            safe: Tensor.uniform([16, 3, size, size], low: -1, high: 1, key: key.fold(in: 1)),
            unsafe: Tensor.uniform([16, 3, size, size], low: -1, high: 1, key: key.fold(in: 2)),
            unsafePrompts: Array(repeating: "a striped red circle", count: 16))
        var settings = base
        // The peer's step is prompt-free; a prompted one runs the same UNet calls.
        settings.promptedShare = 0
        settings.steps = steps
        settings.checkpointEvery = 1_000_000
        let folder = NSTemporaryDirectory() + "duo-bench-unlearn-\(getpid())"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let trainer = try UnlearningTrainer(
            model: model, pairs: pairs, settings: settings, directory: folder, identity: [])
        var times: [Double] = []
        try trainer.train(resume: false) { log in
            times.append(log.seconds)
            return true
        }
        seconds = times.dropFirst(2).sorted()[(times.count - 2) / 2]
    } catch {
        print("error: \(error)")
        exit(1)
    }
    let peak = peakResidentBytes()
    row("duo, seconds per step (median)", seconds * 1000, "ms")
    row("duo, peak resident memory", peak / 1_048_576, "MiB")
    guard let python else { return }
    guard
        let line = runPeer(
            python,
            ["tools/peer_duo_step.py", directory, "\(steps)", targets.joined(separator: ",")])
    else { return }
    let fields = line.split(separator: " ")
    guard fields.count >= 3, let peerSeconds = Double(fields[1]), let peerPeak = Double(fields[2])
    else { return }
    row(
        "PyTorch + peft (2 threads), seconds per step (median)", peerSeconds * 1000, "ms",
        String(format: "duo is %.2fx as fast", peerSeconds / seconds))
    row(
        "PyTorch + peft, peak resident memory", peerPeak / 1_048_576, "MiB",
        String(format: "duo uses %.2fx the memory", peak / peerPeak))
}
