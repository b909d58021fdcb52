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
        let run = try InversionRun(self, images: images, prompts: prompts)
        var step = try restore(checkpointing, vector: run.vector, optimizer: run.optimizer)
        let plan = EpochPlan(examples: run.imageCount * settings.repeats, settings: settings)
        var losses: [Float] = []
        while step < settings.maxTrainSteps {
            let epoch = step / plan.stepsPerEpoch
            let order = draws.order(epoch: epoch, count: plan.examples)
            for micro in plan.microBatches(from: step % plan.stepsPerEpoch) {
                let members = plan.members(micro, order).map { $0 % run.imageCount }
                let drawn = draws.microBatch(
                    index: epoch * plan.microBatchesPerEpoch + micro,
                    shape: run.shape(examples: members.count))
                losses.append(run.backward(members, draws: drawn))
                guard plan.steps(after: micro) else { continue }
                let norm = run.update()
                step += 1
                let mean = losses.reduce(0, +) / Float(losses.count)
                let proceed = progress(Step(step: step, loss: mean, gradientNorm: norm))
                losses = []
                if let checkpointing, !proceed || step % checkpointing.every == 0 {
                    try TrainingCheckpoint.save(
                        to: checkpointing.path, parameters: [("embedding", run.vector)],
                        optimizer: run.optimizer, step: step, metadata: checkpointing.metadata)
                }
                if !proceed { return nil }
                if step == settings.maxTrainSteps { break }
            }
        }
        return run.vector.detached().reshaped([initialEmbedding.shape[1]])
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
        if let mismatch = TrainingCheckpoint.settingsMismatch(saved: saved, current: metadata) {
            throw AttackError(
                "\(checkpointing.path): \(mismatch); resume with the same settings, or start over without --resume"
            )
        }
        return step
    }

}

/// What one run trains on (the images' posteriors, the captions' embeddings) and what it
/// trains (the placeholder's row and its AdamW).
struct InversionRun {
    let inversion: ConceptInversion
    let imageCount: Int
    let data: InversionImages
    /// The captions' embeddings and placeholder masks (`captionEmbeddings`).
    let fixed: Tensor
    let mask: Tensor
    /// The placeholder's row [1, 1, hidden].
    let vector: Tensor
    let optimizer: AdamW

    init(_ inversion: ConceptInversion, images: Tensor, prompts: [String]) throws {
        let settings = inversion.settings
        let available = images.shape[0]
        let count =
            settings.numTrainImages == 0 ? available : min(settings.numTrainImages, available)
        guard count >= 1, settings.captions != .prompts || prompts.count == available else {
            throw AttackError(
                "concept inversion needs images, and one prompt per image, got \(prompts.count) for \(available)"
            )
        }
        try MemoryEstimate.check(
            MemoryEstimate.training(model: inversion.model, rows: settings.trainBatchSize),
            what: "a batch of \(settings.trainBatchSize) images")
        self.inversion = inversion
        imageCount = count
        (fixed, mask) = try inversion.captionEmbeddings(
            inversion.captions(prompts: Array(prompts.prefix(count))))
        data = InversionImages(
            model: inversion.model, images: images.rows(0..<count),
            trainTimesteps: inversion.diffusionLoss.schedule.numTrainTimesteps)
        let start = inversion.initialEmbedding
        vector = Tensor(start.scalars, shape: [1, 1, start.shape[1]], requiresGrad: true)
        optimizer = AdamW(
            parameters: [vector],
            options: .init(
                beta1: settings.adamBeta1, beta2: settings.adamBeta2, eps: settings.adamEpsilon,
                weightDecay: settings.adamWeightDecay))
    }

    /// What a micro-batch of `examples` draws for.
    func shape(examples: Int) -> MicroBatchShape {
        let settings = inversion.settings
        return MicroBatchShape(
            examples: examples, templates: settings.captions == .prompts ? 0 : fixed.shape[0],
            flipP: settings.flipP, latent: data.latentShape, trainTimesteps: data.trainTimesteps)
    }

    /// The loss of the images `members` captioned as drawn (each image's own prompt in
    /// `.prompts`); its gradient ÷ the accumulation steps is added to the row's.
    func backward(_ members: [Int], draws: MicroBatchDraws) -> Float {
        let rows = inversion.settings.captions == .prompts ? members : draws.templates
        let context = inversion.model.textEncoder(
            tokenEmbeddings: gather(fixed, rows) + gather(mask, rows) * vector)
        return inversion.diffusionLoss.backward(
            data.latents(members, draws: draws), context: context, noise: draws.noise,
            timesteps: draws.timesteps,
            scale: 1 / Float(inversion.settings.gradientAccumulationSteps))
    }

    /// AdamW's step on the accumulated gradient, which it then clears; returns its norm.
    func update() -> Float {
        let norm = vector.grad.map { $0.scalars.reduce(0) { $0 + $1 * $1 }.squareRoot() } ?? 0
        optimizer.update(learningRate: inversion.settings.effectiveLearningRate)
        optimizer.zeroGrad()
        return norm
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
