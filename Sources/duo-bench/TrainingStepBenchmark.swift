import Diffusion
import Foundation
import Tensor

/// One training step of a small pixel-space text-to-image UNet (the size class of the
/// embedded default): forward, backward and AdamW at 32x32, batch 32.
func runTrainingStepBenchmark(python: String? = nil) {
    let config = UNetConfig(
        sampleSize: 32, inChannels: 3, outChannels: 3, blockOutChannels: [32, 64, 64],
        downBlocks: [.plain, .crossAttention, .crossAttention],
        upBlocks: [.crossAttention, .crossAttention, .plain], layersPerBlock: 1, heads: [4, 4, 4],
        crossAttentionDim: 64, normGroups: 8)
    let unet = UNet2DConditionModel(config: config, key: RandomKey(seed: 1))
    unet.setTrainable(true)
    let optimizer = AdamW(parameters: unet.parameters)
    let x = Tensor.randn([32, 3, 32, 32], key: RandomKey(seed: 2))
    let context = Tensor.randn([32, 16, 64], key: RandomKey(seed: 3))
    let timesteps = (0..<32).map { Float($0 * 31) }
    let seconds = time(repeats: 12) {
        let difference = unet(x, timesteps: timesteps, context: context) - x
        optimizer.zeroGrad()
        mean(difference * difference).backward()
        optimizer.update(learningRate: 1e-4)
    }
    print(
        "\n# training step: pixel UNet 32x32, channels 32/64/64, \(unet.parameterCount) parameters")
    row("forward + backward + AdamW, batch 32", seconds * 1000, "ms")
    guard let python, let line = runPeer(python, ["tools/peer_train_step.py"]),
        let peerSeconds = Double(line.split(separator: " ")[1])
    else { return }
    row(
        "diffusers (PyTorch, 2 threads), same model", peerSeconds * 1000, "ms",
        String(format: "duo is %.2fx as fast", peerSeconds / seconds))
}
