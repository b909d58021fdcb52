import ArgumentParser
import Diffusion
import Formats
import Foundation
import World

extension Duo {
    /// `duo world pretrain`: rebuilds the embedded default model from scratch.
    struct Pretrain: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Train the embedded text-to-image model from scratch on the procedural world.",
            discussion: """
                Trains the text encoder and the pixel-space UNet together with the denoising \
                loss. Writes DIR/checkpoint.safetensors (the run's state) and DIR/model (a \
                diffusers folder) every --checkpoint-every steps; --resume continues an \
                interrupted run bit for bit (with the same settings).
                """)

        @Option(help: "Output directory.")
        var out: String

        @Option(help: "Optimizer steps.")
        var steps = Pretraining.Parameters().steps

        @Option(help: "Scenes per step.")
        var batchSize = Pretraining.Parameters().batchSize

        @Option(help: "Peak AdamW learning rate (after a linear warm-up of 200 steps).")
        var learningRate = Pretraining.Parameters().learningRate

        @Option(help: "Seed for the initial weights, the data and the noise.")
        var seed = Pretraining.Parameters().seed

        @Option(help: "Steps between checkpoints.")
        var checkpointEvery = Pretraining.Parameters().checkpointEvery

        @Flag(help: "Continue from DIR/checkpoint.safetensors.")
        var resume = false

        func validate() throws {
            guard steps >= 1, batchSize >= 1, checkpointEvery >= 1 else {
                throw ValidationError(
                    "--steps, --batch-size and --checkpoint-every must be at least 1")
            }
            try OptionCheck.finite(learningRate, "--learning-rate", above: 0)
        }

        func run() throws {
            var parameters = Pretraining.Parameters()
            parameters.steps = steps
            parameters.batchSize = batchSize
            parameters.learningRate = learningRate
            parameters.seed = seed
            parameters.checkpointEvery = checkpointEvery
            try MemoryEstimate.check(
                MemoryEstimate.training(unet: EmbeddedModel.unetConfig, rows: batchSize),
                what: "a batch of \(batchSize) scenes")
            let made = try OutputFolder.create(out, for: "--out")
            defer { if made { OutputFolder.removeIfUnused(out) } }
            let lock = try OutputFolder.lock(out, for: "--out")
            defer { lock.release() }
            let bar = ProgressLine("pretraining")
            var recent: [Float] = []
            try Pretraining.train(directory: out, parameters: parameters, resume: resume) { event in
                switch event {
                case .step(let step, let total, let loss):
                    recent = (recent + [loss]).suffix(50)
                    bar.update(
                        step, of: total,
                        detail: String(
                            format: "loss %.4f", recent.reduce(0, +) / Float(recent.count)))
                    return true
                case .checkpoint(let step, let path):
                    bar.note("checkpoint at step \(step): \(path)")
                    return true
                }
            }
            print(out + "/model")
        }
    }
}
