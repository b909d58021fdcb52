import Diffusion
import Tensor

/// Accuracy of a detector on labelled world images, each in [0, 1].
public struct DetectorAccuracy: Hashable, Sendable {
    /// Share of images whose presence (score > 0.5) matches the truth, per concept.
    public var concepts: [Concept: Float]
    public var shape: Float
    public var colour: Float
    /// How many images were scored.
    public var count: Int
}

/// Trains the world's detector on freshly drawn world images and their ground truth.
///
/// Every step draws a new batch (the world is infinite), with each concept present in
/// half of the scenes so the presence heads see both sides equally. The run is a pure
/// function of its parameters.
public enum DetectorTraining {
    public struct Parameters: Sendable {
        public var steps = 2000
        public var batchSize = 64
        public var learningRate: Float = 2e-3
        public var warmupSteps = 50
        /// Seed of the initial weights and of the training images.
        public var seed: UInt64 = 0

        public init() {}

        /// The settings, for the weights file's header.
        public var metadata: [String: String] {
            [
                "steps": "\(steps)", "batch_size": "\(batchSize)",
                "learning_rate": "\(learningRate)",
                "warmup_steps": "\(warmupSteps)", "seed": "\(seed)",
            ]
        }
    }

    public enum Progress {
        case step(Int, of: Int, loss: Float)
    }

    /// The world the detector learns from: each concept present half the time.
    public static let balancedWorld: World = {
        var options = WorldOptions()
        options.stripesProbability = 0.5
        options.splatterProbability = 0.5
        return World(options: options)
    }()

    /// World seed of the training images for run seed `seed`; evaluation uses others
    /// (`heldOutSeed`), so held-out images are never trained on.
    static func trainingSeed(_ seed: UInt64) -> UInt64 { 0xDE7E_C700 &+ seed }

    /// The default world seed of held-out evaluation images.
    public static let heldOutSeed: UInt64 = 0x0E7A_1000

    /// Trains a detector from scratch; `progress` returns false to stop early.
    public static func train(
        parameters p: Parameters, progress: (Progress) -> Bool = { _ in true }
    ) -> WorldDetector {
        let keys = RandomKey(seed: p.seed).split(2)
        let detector = WorldDetector(key: keys[0])
        detector.setTrainable(true)
        let optimizer = AdamW(parameters: detector.parameters)
        let schedule = LearningRateSchedule(
            baseRate: p.learningRate, warmupSteps: p.warmupSteps, totalSteps: p.steps,
            decay: .cosine)
        for step in 0..<p.steps {
            let samples = balancedWorld.samples(
                (step * p.batchSize)..<((step + 1) * p.batchSize), seed: trainingSeed(p.seed))
            let images = WorldDetector.stack(samples.map(\.image))
            let loss = DetectorLoss.loss(detector, images: images, labels: samples.map(\.labels))
                .total
            optimizer.zeroGrad()
            loss.backward()
            _ = clipGradNorm(optimizer.parameters, maxNorm: 1)
            optimizer.update(learningRate: schedule.rate(at: step))
            if !progress(.step(step + 1, of: p.steps, loss: loss.item)) { break }
        }
        detector.setTrainable(false)
        return detector
    }

    /// Accuracy of `detector` on `count` balanced world images of `seed`.
    public static func evaluate(
        _ detector: WorldDetector, count: Int, seed: UInt64 = heldOutSeed
    ) -> DetectorAccuracy {
        let samples = balancedWorld.samples(0..<count, seed: seed)
        let predictions = detector.predict(images: samples.map(\.image))
        func rate(_ correct: (DetectorPrediction, SceneLabels) -> Bool) -> Float {
            let hits = zip(predictions, samples).filter { correct($0, $1.labels) }.count
            return Float(hits) / Float(max(count, 1))
        }
        var concepts: [Concept: Float] = [:]
        for concept in Concept.allCases {
            concepts[concept] = rate { ($0.scores[concept]! > 0.5) == $1.has(concept) }
        }
        return DetectorAccuracy(
            concepts: concepts, shape: rate { $0.shape == $1.shape },
            colour: rate { $0.colour == $1.colour }, count: count)
    }
}
