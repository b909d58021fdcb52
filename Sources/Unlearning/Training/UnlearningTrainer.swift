import Cluster
import Diffusion
import Formats
import Foundation
import Tensor

/// `duo unlearn`'s DUO training loop (ESD's is `ESDTrainer`): LoRA adapters on a frozen model, AdamW with warm-up and
/// gradient clipping, accumulation over micro-batches, one JSON log line per step, atomic
/// checkpoints and bit-exact resume. Everything random derives from (seed, step), so a
/// resumed run ends with the same adapter as one never stopped. Under `mpirun` each rank
/// takes its share of every micro-batch's pairs and the ranks sum their gradients before
/// each update: every rank holds the same adapter, and rank 0 alone writes.
public final class UnlearningTrainer {
    public let model: StableDiffusion
    public let pairs: PairData
    public let settings: UnlearningSettings
    public let directory: String
    /// Metadata a resume must match besides the settings (the model's and pairs' digests).
    public let identity: JSONFields
    public let lora: LoRASet
    let optimizer: AdamW
    /// The original text encoder's outputs, [1, S, D] and [N, S, D]: the pairs' prompts are
    /// encoded for prompted DUO, nil otherwise.
    let emptyPrompt: Tensor
    let unsafePrompts: Tensor?
    let safePrompts: Tensor?
    /// The same by prompt [1, S, D], for looking up.
    let encodings: [String: Tensor]
    let posterior: (mean: Tensor, std: Tensor)?
    /// The noise schedule and prediction type the model was trained with.
    let schedulerConfig: SchedulerConfig
    /// The ranks the pairs are split over (this process alone without mpirun).
    public let group: ProcessGroup
    /// The attack inside training (`adversarialShare` > 0) and the prefix [1, k, hidden] its
    /// last round found (nil before the first), which each round starts from.
    let attack: SoftPromptAttack?
    var adversarialPrefix: Tensor?

    /// What each step reports.
    public typealias StepLog = TrainingStepLog

    public init(
        model: StableDiffusion, pairs: PairData, settings: UnlearningSettings, directory: String,
        identity: JSONFields, group: ProcessGroup = .single
    ) throws {
        schedulerConfig = try SchedulerConfig(contentsOf: model.schedulerConfigPath, for: .ddpm)
        guard settings.tMax <= schedulerConfig.numTrainTimesteps else {
            throw UnlearningError(
                "t_max \(settings.tMax) exceeds the model's \(schedulerConfig.numTrainTimesteps) training timesteps (\(model.schedulerConfigPath))"
            )
        }
        guard settings.method == .duo || settings.method == .dspo else {
            throw UnlearningError(
                "UnlearningTrainer trains DUO and DSPO; ESD has its own (ESDTrainer), UCE trains nothing"
            )
        }
        guard settings.batchSize >= group.size else {
            throw UnlearningError(
                "batch size \(settings.batchSize) is smaller than the \(group.size) MPI ranks: each rank needs a pair of every micro-batch"
            )
        }
        self.group = group
        self.model = model
        self.pairs = pairs
        self.settings = settings
        self.directory = directory
        self.identity = identity
        lora = LoRASet.inject(
            into: model.unet, textEncoder: model.textEncoder, targets: settings.targets,
            rank: settings.rank, alpha: settings.alpha,
            initialization: settings.initialization,
            key: RandomKey(seed: settings.seed).fold(in: 0x4C4F_5241))
        optimizer = AdamW(
            parameters: lora.parameters, options: AdamW.Options(weightDecay: settings.weightDecay))
        attack =
            settings.adversarialShare > 0
            ? try SoftPromptAttack(model: model, settings: settings.attack) : nil
        emptyPrompt = model.encode([""])
        unsafePrompts = settings.promptedShare > 0 ? model.encode(pairs.unsafePrompts) : nil
        safePrompts = settings.promptedShare > 0 ? model.encode(pairs.safePrompts) : nil
        // Fresh adapters (B = 0) leave the encoder's outputs as the original's.
        var encodings = ["": emptyPrompt]
        for (prompts, states) in [
            (pairs.unsafePrompts, unsafePrompts), (pairs.safePrompts, safePrompts),
        ] {
            guard let states else { continue }
            for (i, prompt) in prompts.enumerated() { encodings[prompt] = states.slice(batch: i) }
        }
        self.encodings = encodings
        // A latent model trains on VAE posterior samples, drawn afresh each step as DUO does.
        posterior = model.vae.map { vae in
            GradMode.withNoGrad {
                let safe = vae.encode(pairs.safe)
                let unsafe = vae.encode(pairs.unsafe)
                return (
                    concat([safe.mean, unsafe.mean], axis: 0),
                    concat([safe.std, unsafe.std], axis: 0)
                )
            }
        }
    }

    /// The checkpoint step the last `train(resume: true)` continued from (nil: a fresh
    /// run). config.json records it, so that a resumed run can be told from one that
    /// quietly started over: both end with the same adapter.
    public private(set) var resumedFrom: Int?

    public var metadata: [String: String] {
        Dictionary(
            (settings.fields + identity).map { ($0.key, $0.value.line) },
            uniquingKeysWith: { a, _ in a })
    }

    /// Trains from step 0, or from the checkpoint with `resume` (which must be there).
    /// `report` gets each step's log and returns false to stop early (Ctrl-C): the run
    /// then checkpoints and returns. Returns the step reached.
    @discardableResult
    public func train(resume: Bool, report: (StepLog) -> Bool = { _ in true }) throws -> Int {
        var start = 0
        if resume {
            guard FileManager.default.fileExists(atPath: checkpointPath) else {
                throw UnlearningError(
                    "\(directory): no checkpoint.safetensors to resume from; run without --resume to start training"
                )
            }
            let (step, _) = try TrainingCheckpoint.load(
                from: checkpointPath, parameters: lora.namedParameters, optimizer: optimizer,
                settings: metadata)
            start = step
            adversarialPrefix = try attack.flatMap { attack in
                try TrainingCheckpoint.state(
                    "attack_prefix",
                    shape: [1, attack.settings.tokens, model.textEncoder.config.hiddenSize],
                    from: checkpointPath)
            }
        }
        if group.isRoot { try log.truncate(toStep: start) }
        resumedFrom = resume ? start : nil
        let schedule = LearningRateSchedule(
            baseRate: settings.resolvedLearningRate, warmupSteps: settings.warmupSteps,
            totalSteps: settings.steps)
        var lastCheckpoint = start
        for step in start..<settings.steps {
            let began = Date()
            // The attack first: its passes leave the adapters' gradients alone.
            let attackLoss = attackRound(step)
            optimizer.zeroGrad()
            var totals: [(String, Float)] = []
            for micro in 0..<settings.gradientAccumulation {
                let values = backwardMicroBatch(
                    step * settings.gradientAccumulation + micro,
                    scale: 1 / Float(settings.gradientAccumulation))
                totals = totals.isEmpty ? values : zip(totals, values).map { ($0.0, $0.1 + $1.1) }
            }
            if group.size > 1 { totals = try sumOverRanks(totals) }
            let averaged =
                totals.map { ($0.0, $0.1 / Float(settings.gradientAccumulation)) }
                + (attack == nil ? [] : [("attack_loss", attackLoss ?? 0)])
            let gradNorm = clipGradNorm(optimizer.parameters, maxNorm: settings.maxGradNorm)
            try checkFinite(
                averaged + [("grad_norm", gradNorm)], step: step + 1, lastCheckpoint: lastCheckpoint
            )
            let rate = schedule.rate(at: step)
            optimizer.update(learningRate: rate)
            try checkFinite(
                lora.namedParameters.map { ($0.0, $0.1.scalars.allSatisfy(\.isFinite) ? 0 : .nan) },
                step: step + 1, lastCheckpoint: lastCheckpoint)
            let log = StepLog(
                step: step + 1, terms: averaged + [("lr", rate), ("grad_norm", gradNorm)],
                seconds: Date().timeIntervalSince(began))
            if group.isRoot { try self.log.append(log) }
            // A stop seen by one rank (its Ctrl-C) stops them all at the same step.
            let proceed = try !group.any(!report(log))
            if group.isRoot,
                !proceed || (step + 1) % settings.checkpointEvery == 0 || step + 1 == settings.steps
            {
                try TrainingCheckpoint.save(
                    to: checkpointPath, parameters: lora.namedParameters, optimizer: optimizer,
                    step: step + 1,
                    metadata: metadata,
                    state: adversarialPrefix.map { [("attack_prefix", $0)] } ?? [])
                lastCheckpoint = step + 1
            }
            if !proceed { return step + 1 }
        }
        return settings.steps
    }

    /// Step `step`'s attack round (from `attackWarmupSteps` on, with an attack): moves
    /// `adversarialPrefix` against the adapters on the unsafe image and prompt of the step's
    /// first pair (AdvUnlearn attacks the prompt each step trains on) and returns its mean
    /// loss. Every rank runs the same round on the same adapters and gets the same prefix.
    func attackRound(_ step: Int) -> Float? {
        guard let attack, step >= settings.attackWarmupSteps else { return nil }
        // 0x4144_5652 is "ADVR".
        let key = RandomKey(seed: settings.seed).fold(in: 0x4144_5652).fold(in: UInt64(step))
        let pair = batchIndices(step * settings.gradientAccumulation)[0]
        let start = adversarialPrefix ?? attack.initialPrefix(key: key.fold(in: 1))
        let (prefix, loss) = attack.round(
            prefix: start, prompt: pairs.unsafePrompts[pair],
            image: images([pair], key: key.fold(in: 2)).unsafe, frozen: optimizer.parameters,
            key: key.fold(in: 3))
        adversarialPrefix = prefix
        return loss
    }

    /// Sums the gradients of every rank's pairs (each already weighted by its share of the
    /// micro-batch) and the values they log; returns the summed values.
    func sumOverRanks(_ values: [(String, Float)]) throws -> [(String, Float)] {
        let grads = try optimizer.parameters.map { parameter in
            guard let grad = parameter.grad else {
                throw UnlearningError("a trained parameter has no gradient to sum over ranks")
            }
            return grad
        }
        var flat = grads.flatMap(\.scalars) + values.map(\.1)
        try group.sum(&flat)
        var offset = 0
        for grad in grads {
            grad.withUnsafeMutableBufferPointer { buffer in
                for i in buffer.indices { buffer[i] = flat[offset + i] }
            }
            offset += grad.count
        }
        return zip(values, flat[offset...]).map { ($0.0.0, $0.1) }
    }

    /// Stops the run at the first NaN or infinity in a logged value or a parameter
    /// (`TrainingLog.checkFinite`).
    func checkFinite(_ values: [(String, Float)], step: Int, lastCheckpoint: Int) throws {
        try TrainingLog.checkFinite(
            values, step: step, lastCheckpoint: lastCheckpoint,
            learningRate: settings.resolvedLearningRate,
            loraScale: settings.alpha / Float(settings.rank))
    }

    /// The number of shards a micro-batch's pairs are cut into, each run forward and
    /// backward on its own thread (`DataParallel`). Fixed, not the core count, so that a
    /// run's adapter is the same on one core as on two.
    var shardCount = DataParallel.shardCount

    /// Micro-batch `index` (its pairs, noise and timesteps from (seed, index)): accumulates
    /// the gradient of its loss times `scale` into the adapters' `grad` and returns the
    /// values it logs, each a mean over its pairs.
    func backwardMicroBatch(_ index: Int, scale: Float) -> [(String, Float)] {
        // 0x5354_4550 is "STEP".
        let key = RandomKey(seed: settings.seed).fold(in: 0x5354_4550).fold(in: UInt64(index))
        let indices = batchIndices(index)
        let (safe, unsafe) = images(indices, key: key.fold(in: 3))
        let shape = Array(safe.shape.dropFirst())
        let noise = concat(
            indices.indices.map {
                Tensor.randn([1] + shape, key: key.fold(in: 1).fold(in: UInt64($0)))
            }, axis: 0)
        let draws = key.fold(in: 2).uniform(count: 2 * indices.count)
        let timesteps = draws.map { min(Int($0 * Float(settings.tMax)), settings.tMax - 1) }
        let b = indices.count
        let pairShared = settings.pairConvention == .diffusionDPO
        let batch = PairBatch(
            safe: safe, unsafe: unsafe, noise: noise, safeTimesteps: Array(timesteps[..<b]),
            unsafeTimesteps: pairShared ? Array(timesteps[..<b]) : Array(timesteps[b...]))
        let conditions = promptedConditions(indices, key: key.fold(in: 4))
        // This rank's pairs (all of them alone), cut into its threads' shards.
        let mine = DataParallel.shardRanges(b, shards: group.size)[group.rank]
        let shards = DataParallel.shardRanges(mine.count, shards: shardCount).map {
            ($0.lowerBound + mine.lowerBound)..<($0.upperBound + mine.lowerBound)
        }
        let results = DataParallel.backward(shards: shards.count, parameters: optimizer.parameters)
        { i in
            let pairs = shards[i]
            // Encoded on this shard's thread: through adapters in the text encoder, the
            // contexts are on this shard's tape.
            let mine = conditions.map { Array($0[pairs]) }
            let (loss, values) = shardLoss(
                batch.pairs(pairs), prompts: contexts(mine),
                referencePrompts: lora.adaptsTextEncoder
                    ? lora.withDisabled { GradMode.withNoGrad { contexts(mine) } } : nil)
            // The loss is a mean over pairs: a shard's share is its pairs' fraction.
            let weight = Float(pairs.count) / Float(b)
            return (loss * (weight * scale), values.map { ($0.0, $0.1 * weight) })
        }
        return results.dropFirst().reduce(results[0]) { zip($0, $1).map { ($0.0, $0.1 + $1.1) } }
    }

    /// The loss of some of a micro-batch's pairs, with their contexts (and the original
    /// text encoder's, where it has adapters), and the values it logs (means over those
    /// pairs).
    func shardLoss(
        _ batch: PairBatch, prompts: PromptContexts, referencePrompts: PromptContexts?
    ) -> (loss: Tensor, values: [(String, Float)]) {
        let config = schedulerConfig
        let terms = DUOLoss.compute(
            unet: model.unet, lora: lora, schedule: NoiseSchedule(config: config),
            predictionType: config.predictionType, batch: batch, emptyPrompt: prompts.empty,
            pairPrompts: prompts.pairs, priorPrompts: prompts.prior,
            referencePrompts: referencePrompts, beta: settings.pairBeta,
            lambda: settings.resolvedLambda, unconditionalLambda: settings.unconditionalLambda,
            convention: settings.pairConvention, preference: settings.preference)
        let unconditional =
            settings.unconditionalLambda > 0 ? [("unconditional", terms.unconditional)] : []
        return (
            terms.loss,
            [
                ("loss", terms.loss.item), (settings.preference.rawValue, terms.preference),
                ("prior", terms.prior),
            ]
                + unconditional + [
                    ("implicit_accuracy", terms.implicitAccuracy),
                    ("reward_margin", terms.rewardMargin),
                    ("mse_trained_safe", terms.mseTrainedSafe),
                    ("mse_reference_safe", terms.mseReferenceSafe),
                    ("mse_trained_unsafe", terms.mseTrainedUnsafe),
                    ("mse_reference_unsafe", terms.mseReferenceUnsafe),
                ]
        )
    }

    /// What one image of a pair is conditioned on: a text, or the in-training attack's
    /// current prefix before a prompt.
    enum Condition {
        case text(String)
        case attacked(String)
    }

    /// The conditions of prompted DUO (`promptedShare` > 0), per pair: a pair drawn as
    /// prompted gets its unsafe prompt for the DPO term and its safe prompt for the
    /// output-preserving term, or, drawn for a fragment (`fragmentShare`), a fragment of
    /// each (`PromptFragments`), or for a prefix (`prefixShare`) both after one, or for the
    /// attack (`adversarialShare`) the unsafe prompt after its prefix; the others the empty
    /// prompt for both. nil: prompt-free DUO.
    func promptedConditions(_ indices: [Int], key: RandomKey) -> [(
        pair: Condition, prior: Condition
    )]? {
        guard settings.promptedShare > 0 else { return nil }
        let prompted = key.uniform(count: indices.count).map { $0 < settings.promptedShare }
        let fragmented = key.fold(in: 1).uniform(count: indices.count).map {
            $0 < settings.fragmentShare
        }
        let prefixed = key.fold(in: 3).uniform(count: indices.count).map {
            $0 < settings.prefixShare
        }
        let adversarial = key.fold(in: 5).uniform(count: indices.count).map {
            $0 < settings.adversarialShare
        }
        return indices.enumerated().map { j, i -> (Condition, Condition) in
            let (unsafe, safe) = (pairs.unsafePrompts[i], pairs.safePrompts[i])
            if !prompted[j] { return (.text(""), .text("")) }
            if fragmented[j] {
                let fragment = PromptFragments.make(
                    unsafePrompt: unsafe, safePrompt: safe,
                    conceptWords: Set(settings.conceptWords.map { $0.lowercased() }),
                    draws: key.fold(in: 2).fold(in: UInt64(j)).uniform(
                        count: PromptFragments.drawCount(
                            wordCount: unsafe.split(separator: " ").count)))
                return (.text(fragment.unsafe), .text(fragment.safe))
            }
            if prefixed[j] {
                let draws = key.fold(in: 4).fold(in: UInt64(j)).uniform(
                    count: PromptPrefixes.drawCount)
                let prompts = self.prefixed(i, draws: draws)
                return (.text(prompts.unsafe), .text(prompts.safe))
            }
            if adversarial[j], attack != nil, adversarialPrefix != nil {
                return (.attacked(unsafe), .text(safe))
            }
            return (.text(unsafe), .text(safe))
        }
    }

    /// The contexts of `conditions`' pairs ([B, S, D] each) and the empty prompt's, from the
    /// text encoder as it is on this thread: with adapters in it and switched on, on the
    /// tape; otherwise the original's (a pair's own prompts looked up, not encoded again).
    func contexts(_ conditions: [(pair: Condition, prior: Condition)]?) -> PromptContexts {
        let empty = encode(.text(""))
        guard let conditions else { return PromptContexts(empty: empty) }
        return PromptContexts(
            empty: empty, pairs: concat(conditions.map { encode($0.pair) }, axis: 0),
            prior: concat(conditions.map { encode($0.prior) }, axis: 0))
    }

    /// One condition's encoding [1, S, D] (see `contexts`).
    func encode(_ condition: Condition) -> Tensor {
        let adapted = lora.adaptsTextEncoder && LoRA.isSwitchedOn
        switch condition {
        case .text(let text):
            if !adapted, let known = encodings[text] { return known }
            guard adapted else { return model.encode([text]) }
            return model.textEncoder([
                model.tokenizer.encode(text, padTo: model.tokenizer.maxLength)
            ])
        case .attacked(let prompt):
            return attack!.context(prefix: adversarialPrefix!, prompt: prompt, onTape: adapted)
        }
    }

    /// The conditioning of prompted DUO for a micro-batch's pairs, [B, S, D] each
    /// (`promptedConditions`, encoded by `contexts`); nil: prompt-free DUO.
    func promptedContexts(_ indices: [Int], key: RandomKey) -> (pairs: Tensor, prior: Tensor)? {
        guard let conditions = promptedConditions(indices, key: key) else { return nil }
        let contexts = contexts(conditions)
        return (contexts.pairs!, contexts.prior!)
    }

    /// Pair indices of micro-batch `index`: the pairs in a fresh random order each epoch.
    func batchIndices(_ index: Int) -> [Int] {
        let n = pairs.count
        var orders: [Int: [Int]] = [:]  // a micro-batch spans at most a few epochs
        return (0..<settings.batchSize).map { j in
            let position = index * settings.batchSize + j
            let epoch = position / n
            if orders[epoch] == nil { orders[epoch] = epochOrder(epoch) }
            return orders[epoch]![position % n]
        }
    }

    /// The pairs of `epoch` in their random order, from (seed, epoch) alone.
    func epochOrder(_ epoch: Int) -> [Int] {
        let n = pairs.count
        let draws = RandomKey(seed: settings.seed).fold(in: 0x4550_4F43).fold(in: UInt64(epoch))
            .uniform(count: n)
        return (0..<n).sorted { (draws[$0], $0) < (draws[$1], $1) }
    }

    /// Pair `i`'s prompts after a prefix: one of an attack's, or random words or tokens.
    func prefixed(_ i: Int, draws: [Float]) -> (unsafe: String, safe: String) {
        let (unsafe, safe) = (pairs.unsafePrompts[i], pairs.safePrompts[i])
        if !settings.prefixes.isEmpty {
            return PromptPrefixes.make(
                unsafePrompt: unsafe, safePrompt: safe, prefixes: settings.prefixes, draw: draws[0])
        }
        switch settings.prefixVocabulary {
        case .words:
            return PromptPrefixes.make(
                unsafePrompt: unsafe, safePrompt: safe, vocabulary: prefixVocabulary, draws: draws)
        case .tokens:
            return PromptPrefixes.make(
                unsafePrompt: unsafe, safePrompt: safe, tokens: prefixTokens,
                tokenizer: model.tokenizer, draws: draws)
        }
    }

    /// The tokens prefixes are drawn from (`PromptPrefixes.tokenVocabulary`).
    lazy var prefixTokens: [Int] = PromptPrefixes.tokenVocabulary(
        tokenizer: model.tokenizer, conceptWords: settings.conceptWords)

    /// The words prompt prefixes are drawn from (`PromptPrefixes.vocabulary`).
    lazy var prefixVocabulary: [String] = PromptPrefixes.vocabulary(
        tokenizer: model.tokenizer, conceptWords: settings.conceptWords)

    /// The pairs' x₀ in model space: pixels, or VAE posterior samples × scaling factor.
    func images(_ indices: [Int], key: RandomKey) -> (safe: Tensor, unsafe: Tensor) {
        guard let posterior, let vae = model.vae else {
            return (
                concat(indices.map { pairs.safe.slice(batch: $0) }, axis: 0),
                concat(indices.map { pairs.unsafe.slice(batch: $0) }, axis: 0)
            )
        }
        func sample(_ row: Int, _ salt: UInt64) -> Tensor {
            let mean = posterior.mean.slice(batch: row)
            let std = posterior.std.slice(batch: row)
            return
                (mean + std
                * Tensor.randn(mean.shape, key: key.fold(in: salt).fold(in: UInt64(row))))
                * vae.config.scalingFactor
        }
        let n = pairs.count
        return (
            concat(indices.map { sample($0, 0) }, axis: 0),
            concat(indices.map { sample(n + $0, 1) }, axis: 0)
        )
    }
}

extension PairBatch {
    /// The pairs `range` of the batch.
    func pairs(_ range: Range<Int>) -> PairBatch {
        PairBatch(
            safe: safe.rows(range), unsafe: unsafe.rows(range), noise: noise.rows(range),
            safeTimesteps: Array(safeTimesteps[range]),
            unsafeTimesteps: Array(unsafeTimesteps[range]))
    }
}
