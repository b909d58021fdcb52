import Diffusion
import Foundation
import Tensor

/// `duo synthesize`'s work against diffusers' pipelines on the same world model: 16 pairs,
/// each an unsafe draw (50 steps of the folder's sampler, guidance 7.5) and an SDEdit at strength 0.75, in one
/// batch (tools/peer_synthesis.py is the peer; the detector's filter is off on both sides).
func runSynthesisBenchmark(directory: String, python: String?) {
    let (pairs, steps, strength) = (16, 50, 0.75)
    print(
        "# synthesis: \(pairs) SDEdit pairs, \(steps) steps, strength \(strength), guidance 7.5 (\(directory))"
    )
    let unsafe = (0..<pairs).map { i in
        "a small striped \(["red", "blue", "green", "yellow"][i % 4]) circle on the left on a dark background"
    }
    let safe = unsafe.map { $0.replacingOccurrences(of: "striped ", with: "") }
    let seconds: Double
    do {
        let model = try StableDiffusion.load(directory: directory)
        var edit = ImageToImage.Settings()
        edit.strength = strength
        edit.steps = steps
        let keys = (0..<pairs).map { RandomKey(seed: 0).fold(in: UInt64($0)) }
        seconds = try timeThrowing(repeats: 1) {
            let images = try TextToImage.sample(
                model: model,
                requests: zip(unsafe, keys).map { TextToImage.Request(prompt: $0, key: $1) },
                steps: steps)
            _ = try ImageToImage.edit(
                model: model, images: images * 2 - 1, prompts: safe, negativePrompts: unsafe,
                keys: keys.map { $0.fold(in: 1) }, settings: edit)
        }
    } catch {
        print("error: \(error)")
        exit(1)
    }
    row("duo, pairs per minute", Double(pairs) / seconds * 60, "pairs/min")
    guard let python else { return }
    guard
        let line = runPeer(
            python, ["tools/peer_synthesis.py", directory, "\(pairs)", "\(steps)", "\(strength)"]),
        let peerSeconds = Double(line.split(separator: " ")[1])
    else { return }
    row(
        "diffusers (PyTorch, 2 threads), pairs per minute", Double(pairs) / peerSeconds * 60,
        "pairs/min",
        String(format: "duo is %.1fx faster", peerSeconds / seconds))
}

/// Seconds of the fastest of `repeats` runs after a warm-up run.
func timeThrowing(repeats: Int, _ body: () throws -> Void) throws -> Double {
    try body()
    var best = Double.infinity
    for _ in 0..<repeats {
        let start = Date()
        try body()
        best = min(best, Date().timeIntervalSince(start))
    }
    return best
}
