import Diffusion
import Foundation
import Tensor

/// Textual inversion's training loop as diffusers' script runs it under accelerate
/// (`examples/textual_inversion/textual_inversion.py` at 58eb52c, l.866–976; accelerate at
/// 16cb6eb): each epoch walks a shuffled dataset of `numTrainImages × repeats` examples in
/// micro-batches of `trainBatchSize`; `accelerator.accumulate` divides each loss by the
/// accumulation steps (`Accelerator.backward`, accelerator.py l.2838–2840) and steps AdamW
/// every `gradientAccumulationSteps` micro-batches and at the last micro-batch of each
/// epoch (`_do_sync`, l.1229–1236: accelerate syncs at the dataloader's end), so an epoch
/// may end on a step of fewer micro-batches. Training stops after `maxTrainSteps` steps.
extension ConceptInversion {
    /// One optimizer step's report: the mean of its micro-batches' losses and the norm of
    /// the placeholder's accumulated gradient.
    public struct Step: Sendable {
        public var step: Int
        public var loss: Float
        public var gradientNorm: Float
    }

    /// Where the run keeps its state (the embedding, AdamW's moments and step), every how
    /// many steps, and the settings a resumed run must share (`metadata`).
    public struct Checkpointing {
        public var path: String
        public var every: Int
        public var metadata: [String: String]
        public var resume: Bool

        public init(path: String, every: Int, metadata: [String: String], resume: Bool) {
            self.path = path
            self.every = every
            self.metadata = metadata
            self.resume = resume
        }
    }

    /// The learned embedding [hidden] for `images` ([N, C, H, W] in [-1, 1], the first
    /// `numTrainImages` used) and, for `.prompts` captions, their prompts (each holding the
    /// placeholder). `progress` after each step returns false to stop: the run then
    /// checkpoints and returns nil.
    public func learn<D: TextualInversionDraws>(
        images: Tensor, prompts: [String], draws: inout D, checkpointing: Checkpointing? = nil,
        progress: (Step) -> Bool = { _ in true }
    ) throws -> Tensor? {
        let count =
            settings.numTrainImages == 0
            ? images.shape[0] : min(settings.numTrainImages, images.shape[0])
        guard count >= 1, settings.captions != .prompts || prompts.count == images.shape[0] else {
            throw AttackError(
                "concept inversion needs images, and one prompt per image, got \(prompts.count) for \(images.shape[0])"
            )
        }
        try MemoryEstimate.check(
            MemoryEstimate.training(model: model, rows: settings.trainBatchSize),
            what: "a batch of \(settings.trainBatchSize) images")
        let (fixed, mask) = try captionEmbeddings(captions(prompts: Array(prompts.prefix(count))))
        let data = InversionImages(
            model: model, images: images.rows(0..<count),
            trainTimesteps: diffusionLoss.schedule.numTrainTimesteps)
        let vector = Tensor(
            initialEmbedding.scalars, shape: [1, 1, initialEmbedding.shape[1]], requiresGrad: true)
        let optimizer = AdamW(
            parameters: [vector],
            options: .init(
                beta1: settings.adamBeta1, beta2: settings.adamBeta2, eps: settings.adamEpsilon,
                weightDecay: settings.adamWeightDecay))
        var step = try restore(checkpointing, vector: vector, optimizer: optimizer)
        let plan = EpochPlan(examples: count * settings.repeats, settings: settings)
        var losses: [Float] = []
        while step < settings.maxTrainSteps {
            let epoch = step / plan.stepsPerEpoch
            let order = draws.order(epoch: epoch, count: plan.examples)
            for micro in plan.microBatches(from: step % plan.stepsPerEpoch) {
                let members = plan.members(micro, order).map { $0 % count }
                let drawn = draws.microBatch(
                    index: epoch * plan.microBatchesPerEpoch + micro,
                    shape: data.shape(members.count, settings: settings, templates: fixed.shape[0]))
                let rows = settings.captions == .prompts ? members : drawn.templates
                let context = model.textEncoder(
                    tokenEmbeddings: gather(fixed, rows) + gather(mask, rows) * vector)
                losses.append(
                    diffusionLoss.backward(
                        data.latents(members, draws: drawn), context: context, noise: drawn.noise,
                        timesteps: drawn.timesteps,
                        scale: 1 / Float(settings.gradientAccumulationSteps)))
                guard plan.steps(after: micro) else { continue }
                let norm = vector.grad.map { $0.scalars.reduce(0) { $0 + $1 * $1 }.squareRoot() }
                optimizer.update(learningRate: settings.effectiveLearningRate)
                optimizer.zeroGrad()
                step += 1
                let proceed = progress(
                    Step(
                        step: step, loss: losses.reduce(0, +) / Float(losses.count),
                        gradientNorm: norm ?? 0))
                losses = []
                if let checkpointing, !proceed || step % checkpointing.every == 0 {
                    try TrainingCheckpoint.save(
                        to: checkpointing.path, parameters: [("embedding", vector)],
                        optimizer: optimizer, step: step, metadata: checkpointing.metadata)
                }
                if !proceed { return nil }
                if step == settings.maxTrainSteps { break }
            }
        }
        return vector.detached().reshaped([initialEmbedding.shape[1]])
    }

    /// The step a checkpoint resumes from (its embedding and AdamW's state loaded), or 0.
    func restore(_ checkpointing: Checkpointing?, vector: Tensor, optimizer: AdamW) throws -> Int {
        guard let checkpointing, checkpointing.resume else { return 0 }
        guard FileManager.default.fileExists(atPath: checkpointing.path) else {
            throw AttackError(
                "\(checkpointing.path): no checkpoint to resume from; run without --resume to start"
            )
        }
        let (step, saved) = try TrainingCheckpoint.load(
            from: checkpointing.path, parameters: [("embedding", vector)], optimizer: optimizer)
        let metadata = checkpointing.metadata
        if let key = metadata.keys.sorted().first(where: { saved[$0] != metadata[$0] }) {
            throw AttackError(
                "\(checkpointing.path): was made with \(key) \(saved[key] ?? "unset"), not \(metadata[key]!); resume with the same settings, or start over without --resume"
            )
        }
        return step
    }

    /// Rows `rows` of `x` along the batch axis.
    func gather(_ x: Tensor, _ rows: [Int]) -> Tensor {
        concat(rows.map { x.slice(batch: $0) }, axis: 0)
    }
}

/// How an epoch's micro-batches fall into optimizer steps.
struct EpochPlan {
    let examples: Int
    let batch: Int
    let accumulation: Int

    init(examples: Int, settings: ConceptInversion.Settings) {
        self.examples = examples
        batch = settings.trainBatchSize
        accumulation = settings.gradientAccumulationSteps
    }

    /// The DataLoader's batches (the last may be short: `drop_last` is off).
    var microBatchesPerEpoch: Int { (examples + batch - 1) / batch }
    /// Steps per epoch: one per `accumulation` micro-batches and one at the epoch's end.
    var stepsPerEpoch: Int { (microBatchesPerEpoch + accumulation - 1) / accumulation }

    /// The epoch's micro-batches from the one that opens step `stepInEpoch`.
    func microBatches(from stepInEpoch: Int) -> Range<Int> {
        (stepInEpoch * accumulation)..<microBatchesPerEpoch
    }

    /// Whether an optimizer step follows micro-batch `micro`.
    func steps(after micro: Int) -> Bool {
        (micro + 1) % accumulation == 0 || micro + 1 == microBatchesPerEpoch
    }

    /// The dataset indices of micro-batch `micro` in the epoch's `order`.
    func members(_ micro: Int, _ order: [Int]) -> [Int] {
        Array(order[(micro * batch)..<min(examples, (micro + 1) * batch)])
    }
}

/// The training images in the UNet's space, each as it is and mirrored (the script flips
/// the pixels before the VAE): the VAE posterior's mean and standard deviation, encoded
/// once, so that a draw of `latent_dist.sample()` is mean + std × noise. A pixel-space
/// model's images are their own latents.
struct InversionImages {
    /// [orientation][image]: mean and std [1, C, h, w] (std nil for a pixel model).
    let posteriors: [[(mean: Tensor, std: Tensor?)]]
    let scalingFactor: Float
    let trainTimesteps: Int

    init(model: StableDiffusion, images: Tensor, trainTimesteps: Int) {
        scalingFactor = model.vae?.config.scalingFactor ?? 1
        self.trainTimesteps = trainTimesteps
        posteriors = [images, Self.mirrored(images)].map { oriented in
            (0..<oriented.shape[0]).map { i in
                let image = oriented.slice(batch: i)
                guard let vae = model.vae else { return (image, nil) }
                return GradMode.withNoGrad { vae.encode(image) }
            }
        }
    }

    /// `images` [N, C, H, W] flipped left to right.
    static func mirrored(_ images: Tensor) -> Tensor {
        let width = images.shape[3]
        let values = images.scalars
        var flipped = values
        for row in 0..<(values.count / width) {
            for x in 0..<width { flipped[row * width + x] = values[row * width + width - 1 - x] }
        }
        return Tensor(flipped, shape: images.shape)
    }

    func shape(_ examples: Int, settings: ConceptInversion.Settings, templates: Int)
        -> MicroBatchShape
    {
        MicroBatchShape(
            examples: examples, templates: settings.captions == .prompts ? 0 : templates,
            flipP: settings.flipP, latent: Array(posteriors[0][0].mean.shape.dropFirst()),
            trainTimesteps: trainTimesteps)
    }

    /// The micro-batch's x₀ [B, C, h, w]: each member's posterior (mirrored where drawn)
    /// sampled with the drawn noise, times the VAE's scaling factor.
    func latents(_ members: [Int], draws: MicroBatchDraws) -> Tensor {
        let rows = members.enumerated().map { j, image in
            let (mean, std) = posteriors[draws.flips[j] ? 1 : 0][image]
            guard let std else { return mean }
            return (mean + std * draws.posteriorNoise.slice(batch: j)) * scalingFactor
        }
        return concat(rows, axis: 0)
    }
}
