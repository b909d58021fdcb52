import Diffusion
import Foundation
import Tensor

/// `duo world pretrain`: trains the embedded model from scratch on the procedural world
/// (text encoder and UNet together, the denoising loss of Ho et al. 2020 with 10% empty
/// captions so that classifier-free guidance works). Checkpoints every few hundred steps;
/// a resumed run continues bit for bit.
public enum Pretraining {
    public struct Parameters: Sendable {
        public var steps = 8000
        public var batchSize = 32
        public var learningRate: Float = 5e-4
        public var warmupSteps = 200
        public var seed: UInt64 = 0
        public var checkpointEvery = 250
        /// Share of captions replaced by "" (the unconditional side of guidance).
        public var captionDropout: Float = 0.1

        public init() {}

        var metadata: [String: String] {
            [
                "steps": "\(steps)", "batch_size": "\(batchSize)",
                "learning_rate": "\(learningRate)",
                "warmup_steps": "\(warmupSteps)", "seed": "\(seed)",
                "caption_dropout": "\(captionDropout)",
            ]
        }
    }

    public enum Progress {
        case step(Int, of: Int, loss: Float)
        case checkpoint(step: Int, path: String)
    }

    /// Trains into `directory`: `checkpoint.safetensors` (the run's state) and `model/`
    /// (the diffusers folder, rewritten at every checkpoint and at the end). `progress`
    /// returns false to stop: the run then checkpoints where it is, to be resumed.
    public static func train(
        directory: String, parameters p: Parameters, resume: Bool,
        progress: (Progress) -> Bool = { _ in true }
    ) throws {
        let files = EmbeddedModel.tokenizerFiles
        let tokenizer = CLIPTokenizer(
            vocabulary: files.vocabulary, merges: files.merges, maxLength: files.maxLength)
        let keys = RandomKey(seed: p.seed).split(3)
        let textEncoder = CLIPTextModel(
            config: EmbeddedModel.textEncoderConfig(vocabularySize: files.vocabulary.count),
            key: keys[0])
        let unet = UNet2DConditionModel(config: EmbeddedModel.unetConfig, key: keys[1])
        let named = scoped("text_encoder", textEncoder) + scoped("unet", unet)
        named.forEach { $0.1.requiresGrad = true }
        let optimizer = AdamW(parameters: named.map(\.1))
        let checkpoint = directory + "/checkpoint.safetensors"
        let start =
            resume && FileManager.default.fileExists(atPath: checkpoint)
            ? try resumed(from: checkpoint, parameters: named, optimizer: optimizer, p) : 0
        try FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true)
        let schedule = LearningRateSchedule(
            baseRate: p.learningRate, warmupSteps: p.warmupSteps, totalSteps: p.steps)
        let scheduler = DDPMScheduler(config: EmbeddedModel.schedulerConfig)
        let world = World()
        func save(_ step: Int) throws {
            try TrainingCheckpoint.save(
                to: checkpoint, parameters: named, optimizer: optimizer, step: step,
                metadata: p.metadata)
            try ModelFolderWriter.write(
                to: directory + "/model", tokenizer: files, textEncoder: textEncoder,
                unet: unet, scheduler: EmbeddedModel.schedulerConfig)
            try EmbeddedModel.writeDefaults(into: directory + "/model")
            _ = progress(.checkpoint(step: step, path: checkpoint))
        }
        for step in start..<p.steps {
            let batch = world.batch((step * p.batchSize)..<((step + 1) * p.batchSize), seed: p.seed)
            let key = keys[2].fold(in: UInt64(step))
            let captions = batch.captions.enumerated().map { i, caption in
                key.fold(in: UInt64(i)).uniform(count: 1)[0] < p.captionDropout ? "" : caption
            }
            let context = textEncoder(
                captions.map { tokenizer.encode($0, padTo: tokenizer.maxLength) })
            let loss = DenoisingLoss.loss(
                unet: unet, x0: batch.images, context: context,
                scheduler: scheduler, key: key.fold(in: 1 << 32))
            optimizer.zeroGrad()
            loss.backward()
            let gradNorm = clipGradNorm(optimizer.parameters, maxNorm: 1)
            optimizer.update(learningRate: schedule.rate(at: step))
            // A diverged model is never written: an earlier checkpoint stays the last good one.
            guard loss.item.isFinite, gradNorm.isFinite,
                optimizer.parameters.allSatisfy({ $0.scalars.allSatisfy(\.isFinite) })
            else {
                throw ModelError(
                    file: directory,
                    "step \(step + 1): training diverged (loss \(loss.item), gradient norm \(gradNorm)); "
                        + "lower --learning-rate, now \(p.learningRate); any earlier checkpoint is kept"
                )
            }
            let proceed = progress(.step(step + 1, of: p.steps, loss: loss.item))
            if !proceed || (step + 1) % p.checkpointEvery == 0 || step + 1 == p.steps {
                try save(step + 1)
            }
            if !proceed { return }
        }
        // A resumed run that was already finished still leaves its model folder.
        if start == p.steps { try save(start) }
    }

    /// Loads the checkpoint's weights and optimizer state; the step it reached.
    static func resumed(
        from checkpoint: String, parameters named: [(String, Tensor)], optimizer: AdamW,
        _ p: Parameters
    ) throws -> Int {
        let (step, metadata) = try TrainingCheckpoint.load(
            from: checkpoint, parameters: named, optimizer: optimizer)
        // The learning rate is constant after the warm-up, so a run's path does not depend
        // on its total steps: a finished run may be continued to more steps, and gives the
        // weights a longer run from scratch would.
        let compared = { (m: [String: String]) in m.filter { $0.key != "steps" } }
        guard compared(metadata) == compared(p.metadata), step <= p.steps else {
            throw ModelError(
                file: checkpoint,
                "was made with other settings (\(metadata.sorted { $0.key < $1.key })); resume with the same ones"
            )
        }
        return step
    }
}
