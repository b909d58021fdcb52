import Concepts
import Diffusion

/// What a run's command line sets; nil leaves the concept file's value, or the model's.
public struct UnlearningOptions: Sendable {
    public var method: UnlearningSettings.Method?
    public var beta: Float?
    public var lambda: Float?
    public var rank: Int?
    public var alpha: Float?
    public var targets: Set<LoRATarget>?
    public var learningRate: Float?
    public var steps: Int?
    public var batchSize: Int?
    public var gradientAccumulation: Int?
    public var warmupSteps: Int?
    public var tMax: Int?
    public var convention: DPOConvention?
    public var promptedShare: Float?
    public var unconditionalLambda: Float?
    public var dspoBeta: Float?
    public var fragmentShare: Float?
    public var prefixShare: Float?
    public var prefixVocabulary: UnlearningSettings.PrefixVocabulary?
    public var adversarialShare: Float?
    public var attackSteps: Int?
    public var attackWarmupSteps: Int?
    public var seed: UInt64?
    public var checkpointEvery: Int?

    public init() {}
}

extension UnlearningSettings {
    /// A run's settings: the methods' reference settings with the model folder's own
    /// defaults, then the concept file's `[unlearning]`, then the command line's options,
    /// each winning over what came before. DSPO takes DUO's settings with a concept file's
    /// preserving weights divided by `dpoGradientScale`. A concept file's unconditional-preserving term
    /// is for prompted DUO and is dropped on a prompt-free run; asked for on a run whose
    /// pairs are not all prompted, it is an error.
    public static func merged(
        model: ModelDefaults, concept: ConceptFile.UnlearningDefaults, options o: UnlearningOptions
    ) throws -> UnlearningSettings {
        var s = model.unlearningSettings()
        s.method = o.method ?? s.method
        s.beta = o.beta ?? concept.beta ?? s.beta
        s.lambda = o.lambda ?? concept.lambda ?? s.lambda
        s.rank = o.rank ?? concept.rank ?? s.rank
        s.alpha = o.alpha ?? Float(s.rank)
        s.targets = o.targets ?? concept.targets ?? s.targets
        s.learningRate = o.learningRate ?? concept.learningRate ?? s.learningRate
        s.steps = o.steps ?? concept.steps ?? s.steps
        s.batchSize = o.batchSize ?? s.batchSize
        s.gradientAccumulation = o.gradientAccumulation ?? s.gradientAccumulation
        s.warmupSteps = o.warmupSteps ?? s.warmupSteps
        s.tMax = o.tMax ?? concept.tMax ?? s.tMax
        s.convention = o.convention ?? s.convention
        s.promptedShare = o.promptedShare ?? concept.promptedShare ?? s.promptedShare
        s.unconditionalLambda =
            o.unconditionalLambda ?? concept.unconditionalLambda ?? s.unconditionalLambda
        if s.unconditionalLambda > 0, s.promptedShare == 0, o.unconditionalLambda == nil {
            s.unconditionalLambda = 0
        }
        s.fragmentShare = o.fragmentShare ?? concept.fragmentShare ?? s.fragmentShare
        if s.fragmentShare > 0, s.promptedShare == 0 {
            if o.fragmentShare == nil {
                s.fragmentShare = 0  // a concept file's, on a prompt-free run
            } else {
                throw UnlearningError(
                    "--fragment-share \(s.fragmentShare) needs prompted pairs (--prompted-share above 0): fragments are of the pairs' prompts"
                )
            }
        }
        s.prefixShare = o.prefixShare ?? concept.prefixShare ?? s.prefixShare
        if s.prefixShare > 0, s.promptedShare == 0 {
            if o.prefixShare == nil {
                s.prefixShare = 0  // a concept file's, on a prompt-free run
            } else {
                throw UnlearningError(
                    "--prefix-share \(s.prefixShare) needs prompted pairs (--prompted-share above 0): prefixes go before the pairs' prompts"
                )
            }
        }
        s.prefixVocabulary =
            o.prefixVocabulary ?? concept.prefixVocabulary.flatMap {
                UnlearningSettings.PrefixVocabulary(rawValue: $0)
            } ?? s.prefixVocabulary
        s.adversarialShare = o.adversarialShare ?? concept.adversarialShare ?? s.adversarialShare
        if s.adversarialShare > 0, s.promptedShare == 0 {
            if o.adversarialShare == nil {
                s.adversarialShare = 0  // a concept file's, on a prompt-free run
            } else {
                throw UnlearningError(
                    "--adversarial-share \(s.adversarialShare) needs prompted pairs (--prompted-share above 0): the attack's prefix goes before the pairs' prompts"
                )
            }
        }
        s.attack.steps = o.attackSteps ?? concept.attackSteps ?? s.attack.steps
        s.attackWarmupSteps =
            o.attackWarmupSteps ?? concept.attackWarmupSteps ?? s.attackWarmupSteps
        if s.method == .dspo {
            // A concept file's λs are DUO's: weighed against DPO's gradient, not DSPO's.
            s.dspoBeta = o.dspoBeta ?? s.dspoBeta
            s.lambda = o.lambda ?? concept.lambda.map { $0 / s.dpoGradientScale }
            if o.unconditionalLambda == nil { s.unconditionalLambda /= s.dpoGradientScale }
        }
        if s.unconditionalLambda > 0, s.promptedShare < 1 {
            throw UnlearningError(
                "--lambda-unconditional \(s.unconditionalLambda) needs every pair prompted (--prompted-share 1, "
                    + "got \(s.promptedShare)): on a prompt-free pair it would hold the very prediction DPO moves"
            )
        }
        s.seed = o.seed ?? s.seed
        s.checkpointEvery = o.checkpointEvery ?? s.checkpointEvery
        return s
    }
}
