import Diffusion
import Formats
import Foundation
import Tensor

/// `duo unlearn --method esd`: ESD's training loop as its reference runs it
/// (rohitgandikota/erasing at b8aeab6, train-scripts/train-esd.py l.216-253). Each iteration
/// draws t_enc, a timestep and noise, samples x_t with the model being trained, and takes
/// one Adam step on the negative-guidance loss; no pairs, one concept phrase. One JSON log
/// line per iteration, atomic checkpoints and bit-exact resume: everything random derives
/// from (seed, iteration).
public final class ESDTrainer: TrainingRun {
    public let model: StableDiffusion
    public let settings: ESDSettings
    public let directory: String
    /// Metadata a resume must match besides the settings (the model's digest).
    public let identity: JSONFields
    public let weights: ESDWeights
    let optimizer: AdamW
    let scheduler: DDIMScheduler
    /// The concept phrase's and the empty prompt's text states, [1, S, D].
    let concept: Tensor
    let empty: Tensor
    /// The checkpoint step the last `train(resume: true)` continued from (nil: a fresh run).
    public private(set) var resumedFrom: Int?

    public init(
        model: StableDiffusion, settings: ESDSettings, directory: String, identity: JSONFields
    ) throws {
        self.model = model
        self.settings = settings
        self.directory = directory
        self.identity = identity
        scheduler = try Self.ddim(model: model, steps: settings.ddimSteps)
        weights = Self.weights(model.unet, settings: settings)
        optimizer = Self.adam(weights)
        concept = model.encode([settings.prompt])
        empty = model.encode([""])
    }

    /// The model's DDIM sampler with `steps` steps (an SD 1.x folder's is the reference's).
    static func ddim(model: StableDiffusion, steps: Int) throws -> DDIMScheduler {
        guard var ddim = try model.scheduler(.ddim) as? DDIMScheduler else {
            preconditionFailure("scheduler(.ddim) is a DDIMScheduler")
        }
        do {
            try ddim.setTimesteps(steps)
        } catch {
            throw UnlearningError("--ddim-steps \(steps): \(error)")
        }
        return ddim
    }

    /// The trained weights: the method's parameters at full rank, or fresh LoRA adapters.
    static func weights(_ unet: UNet2DConditionModel, settings: ESDSettings) -> ESDWeights {
        switch settings.weights {
        case .fullRank:
            return FullRankSubset(unet: unet, method: settings.trainMethod)
        case .lora(let rank, let alpha, let targets):
            return LoRASet.inject(
                into: unet, targets: targets, rank: rank, alpha: alpha, initialization: .gaussian,
                key: RandomKey(seed: settings.seed).fold(in: 0x4C4F_5241))
        }
    }

    /// torch.optim.Adam's defaults (l.210): AdamW's update with no weight decay is Adam's.
    static func adam(_ weights: ESDWeights) -> AdamW {
        AdamW(parameters: weights.namedParameters.map(\.1), options: .init(weightDecay: 0))
    }

    public var metadata: [String: String] {
        Dictionary(
            (settings.fields + identity).map { ($0.key, $0.value.line) },
            uniquingKeysWith: { a, _ in a })
    }

    /// The draws of iteration `index` (0-based), from (seed, index) alone.
    func draw(_ index: Int) -> ESDTrajectory.Draw {
        // 0x4553_4420 is "ESD ".
        let key = RandomKey(seed: settings.seed).fold(in: 0x4553_4420).fold(in: UInt64(index))
        let c = model.unet.config
        return ESDTrajectory.draw(
            ddimSteps: settings.ddimSteps, trainTimesteps: scheduler.numTrainTimesteps,
            shape: [1, c.inChannels, c.sampleSize, c.sampleSize], key: key)
    }

    /// One iteration with its draws given: x_t from the UNet as it is now, the loss, its
    /// gradient and an Adam step. Returns the values it logs.
    public static func iterate(
        unet: UNet2DConditionModel, weights: ESDWeights, optimizer: AdamW,
        scheduler: DDIMScheduler, draw: ESDTrajectory.Draw, concept: Tensor, empty: Tensor,
        settings: ESDSettings
    ) -> [(String, Float)] {
        optimizer.zeroGrad()
        let xt = ESDTrajectory.sample(
            unet: unet, scheduler: scheduler, draw: draw, concept: concept, empty: empty,
            guidance: settings.startGuidance)
        let terms = ESDLoss.compute(
            unet: unet, weights: weights, xt: xt, timesteps: [draw.timestep], concept: concept,
            emptyPrompt: empty, eta: settings.negativeGuidance)
        terms.loss.backward()
        // The reference does not clip: the norm is only logged.
        let gradNorm = clipGradNorm(optimizer.parameters, maxNorm: .infinity)
        optimizer.update(learningRate: settings.learningRate)
        return [
            ("loss", terms.loss.item), ("guidance_cosine", terms.guidanceCosine),
            ("t_enc", Float(draw.tEnc)), ("timestep", Float(draw.timestep)),
            ("lr", settings.learningRate), ("grad_norm", gradNorm),
        ]
    }

    /// Trains from iteration 0, or from the checkpoint with `resume` (which must be there).
    /// `report` gets each iteration's log and returns false to stop early (Ctrl-C): the run
    /// then checkpoints and returns. Returns the iteration reached.
    @discardableResult
    public func train(resume: Bool, report: (TrainingStepLog) -> Bool = { _ in true }) throws
        -> Int
    {
        let start = resume ? try restore() : 0
        try log.truncate(toStep: start)
        resumedFrom = resume ? start : nil
        var lastCheckpoint = start
        for index in start..<settings.iterations {
            let began = Date()
            let terms = Self.iterate(
                unet: model.unet, weights: weights, optimizer: optimizer, scheduler: scheduler,
                draw: draw(index), concept: concept, empty: empty, settings: settings)
            let finite = weights.namedParameters.map {
                ($0.0, $0.1.withUnsafeBufferPointer { $0.allSatisfy(\.isFinite) } ? Float(0) : .nan)
            }
            try TrainingLog.checkFinite(
                terms + finite, step: index + 1, lastCheckpoint: lastCheckpoint,
                learningRate: settings.learningRate)
            let entry = TrainingStepLog(
                step: index + 1, terms: terms, seconds: Date().timeIntervalSince(began))
            try log.append(entry)
            let proceed = report(entry)
            let done = index + 1
            if !proceed || done % settings.checkpointEvery == 0 || done == settings.iterations {
                try TrainingCheckpoint.save(
                    to: checkpointPath, parameters: weights.namedParameters, optimizer: optimizer,
                    step: done, metadata: metadata)
                lastCheckpoint = done
            }
            if !proceed { return done }
        }
        return settings.iterations
    }

    /// Loads the folder's checkpoint into the weights and optimizer; returns its step.
    func restore() throws -> Int {
        guard FileManager.default.fileExists(atPath: checkpointPath) else {
            throw UnlearningError(
                "\(directory): no checkpoint.safetensors to resume from; run without --resume to start training"
            )
        }
        let (step, _) = try TrainingCheckpoint.load(
            from: checkpointPath, parameters: weights.namedParameters, optimizer: optimizer,
            settings: metadata)
        return step
    }
}
