import Diffusion
import Foundation
import Tensor
import Unlearning

/// One DUO step on a world model folder (rank 32, batch 4 pairs: 12 UNet images with
/// gradients and 12 without) against the same step in PyTorch with peft
/// (tools/peer_duo_step.py): median seconds per step and peak memory. With DUO's settings
/// (LoRA on self-attention), then the model folder's own defaults (duo_defaults.json: self-attention and convs on
/// the embedded model). With a peer, `rounds` times alternately (duo, then PyTorch), each
/// round's ratio printed: on a shared machine a drift in speed then shows as a spread of
/// ratios instead of as one ratio taken across the drift.
func runUnlearningStepBenchmark(directory: String, python: String?, rounds: Int = 1) {
    runUnlearningStep(
        directory: directory, python: python, settings: UnlearningSettings(), rounds: rounds)
    guard let defaults = try? ModelDefaults(directory: directory).unlearningSettings() else {
        print("error: \(directory)/\(ModelDefaults.fileName) is unreadable")
        return
    }
    runUnlearningStep(directory: directory, python: python, settings: defaults, rounds: rounds)
}

func runUnlearningStep(
    directory: String, python: String?, settings base: UnlearningSettings, rounds: Int
) {
    let steps = 12
    let targets = base.targetNames
    print(
        "# DUO step: \(directory), LoRA rank 32 on \(targets.joined(separator: " and ")), batch 4 pairs, \(steps) steps"
    )
    var ratios: [Double] = []
    for round in 1...max(rounds, 1) {
        let label = rounds > 1 ? ", round \(round)" : ""
        let seconds = duoStepSeconds(directory: directory, settings: base, steps: steps)
        let peak = peakResidentBytes()
        row("duo, seconds per step (median)\(label)", seconds * 1000, "ms")
        row("duo, peak resident memory", peak / 1_048_576, "MiB")
        guard let python,
            let line = runPeer(
                python,
                ["tools/peer_duo_step.py", directory, "\(steps)", targets.joined(separator: ",")])
        else { return }
        let fields = line.split(separator: " ")
        guard fields.count >= 3, let peerSeconds = Double(fields[1]),
            let peerPeak = Double(fields[2])
        else { return }
        ratios.append(peerSeconds / seconds)
        row(
            "PyTorch + peft, seconds per step (median)\(label)", peerSeconds * 1000,
            "ms", String(format: "duo is %.2fx as fast", peerSeconds / seconds))
        row(
            "PyTorch + peft, peak resident memory", peerPeak / 1_048_576, "MiB",
            String(format: "duo uses %.2fx the memory", peak / peerPeak))
    }
    if ratios.count > 1 {
        let listed = ratios.map { String(format: "%.2f", $0) }.joined(separator: ", ")
        print(
            "duo's speed over PyTorch's in each round: \(listed) (lowest \(String(format: "%.2f", ratios.min()!)))"
        )
    }
}

/// The median seconds of DUO steps 3...`steps` on the folder's model, with random pairs.
func duoStepSeconds(directory: String, settings base: UnlearningSettings, steps: Int) -> Double {
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
        return times.dropFirst(2).sorted()[(times.count - 2) / 2]
    } catch {
        print("error: \(error)")
        exit(1)
    }
}
