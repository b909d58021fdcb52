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
                throw UsageError(
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
            try checkFolder()
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

        /// `model.tmp-PID` of a process that is gone (kill(pid, 0) fails with ESRCH only
        /// when no such process exists).
        static func isAbandonedStaging(_ entry: String) -> Bool {
            guard entry.hasPrefix("model.tmp-"), let pid = Int32(entry.dropFirst(10)),
                pid != getpid()
            else { return false }
            return kill(pid, 0) != 0 && errno == ESRCH
        }

        /// --out must hold nothing but what a pretraining run writes: its checkpoint (with the
        /// settings pretraining saves) and, beside it, the model folder it writes with it. A
        /// run replaces both; it never replaces a model or a checkpoint it did not write.
        func checkFolder() throws {
            let files = FileManager.default
            let checkpoint = out + "/checkpoint.safetensors"
            var entries = ((try? files.contentsOfDirectory(atPath: out)) ?? [])
                .filter { !$0.hasPrefix(".") }.sorted()
            // The model's staging folder of a run that was killed while writing it.
            for entry in entries where Self.isAbandonedStaging(entry) {
                try? files.removeItem(atPath: out + "/" + entry)
            }
            entries.removeAll(where: Self.isAbandonedStaging)
            if let foreign = entries.first(where: {
                !["checkpoint.safetensors", "model"].contains($0)
            }) {
                throw UsageError(
                    "--out \(out): holds \(foreign), which duo world pretrain does not write; give another folder"
                )
            }
            if files.fileExists(atPath: checkpoint) {
                let metadata = (try? SafeTensorsReader(path: checkpoint).metadata) ?? [:]
                guard metadata["caption_dropout"] != nil, metadata["warmup_steps"] != nil else {
                    throw UsageError(
                        "\(checkpoint): exists and is not a duo world pretrain checkpoint; give another --out"
                    )
                }
            } else if entries.contains("model") {
                throw UsageError(
                    "--out \(out): holds a model folder without the checkpoint pretraining writes beside it; give another folder"
                )
            }
            if resume, !files.fileExists(atPath: checkpoint) {
                throw UsageError(
                    "--resume: \(checkpoint) does not exist; run without --resume to start")
            }
        }
    }
}
