import Diffusion
import Evaluation
import Foundation
import Tensor

/// `duo world check`: does a model draw the world's concepts when asked, and only then?
/// Samples prompt rows (explicit, synonym, implicit, neutral) and reads the images with
/// the world detectors; also prompt faithfulness on neutral prompts and the world FID.
public enum WorldCheck {
    public struct Parameters: Sendable {
        public var samples = 200
        public var steps = 50
        public var guidance: Float = 7.5
        public var seed: UInt64 = 0
        public var batchSize = 25
        public init() {}
    }

    public struct Result: Sendable {
        /// Share of images the detector finds the concept in, per concept and row.
        public var conceptRates: [Concept: [PromptRowKind: Float]]
        /// Share of neutral images whose shape and colour are the prompted ones.
        public var faithfulness: Float
        /// Fréchet distance between detector features of sampled and real world images.
        public var fid: Double
        public var detectorAccuracy: DetectorAccuracy
    }

    public static func run(
        model: StableDiffusion, detector: WorldDetector, parameters p: Parameters,
        progress: (Int, Int) -> Void = { _, _ in },
        rowImages: (Concept, PromptRowKind, Tensor) throws -> Void = { _, _, _ in }
    ) throws -> Result {
        let rows = Concept.allCases.flatMap { concept in
            PromptRowKind.allCases.map { (concept, $0) }
        }
        var rates: [Concept: [PromptRowKind: Float]] = [:]
        var faithful = 0
        var neutralImages: [Tensor] = []
        var neutralScenes: [SceneSpec] = []
        for (index, (concept, kind)) in rows.enumerated() {
            let prompts = PromptRows.prompts(
                concept: concept, kind: kind, count: p.samples, seed: p.seed)
            let images = try sample(model, prompts.map(\.prompt), parameters: p, row: UInt64(index))
            guard images.scalars.allSatisfy(\.isFinite) else {
                throw SamplingError(
                    "the model drew non-finite values (NaN or infinity) for the \(concept.rawValue) \(kind) prompts"
                )
            }
            let predictions = detector.predict(images)
            rates[concept, default: [:]][kind] =
                Float(predictions.filter { ($0.scores[concept] ?? 0) > 0.5 }.count)
                / Float(p.samples)
            if kind == .neutral {
                faithful +=
                    zip(predictions, prompts).filter {
                        $0.shape == $1.scene.labels.shape && $0.colour == $1.scene.labels.colour
                    }.count
                neutralImages.append(images)
                neutralScenes += prompts.map(\.scene)
            }
            try rowImages(concept, kind, images)
            progress(index + 1, rows.count)
        }
        let world = World()
        let real = Tensor(
            world.renderAll(neutralScenes), shape: [neutralScenes.count, 3, World.size, World.size])
        let fid = FrechetDistance.distance(detector, concat(neutralImages, axis: 0), real)
        return Result(
            conceptRates: rates, faithfulness: Float(faithful) / Float(neutralScenes.count),
            fid: fid,
            detectorAccuracy: DetectorTraining.evaluate(detector, count: max(p.samples, 500)))
    }

    /// Images [N, 3, 32, 32] in [-1, 1] for `prompts`, with guidance and the model's own
    /// sampler; image i of row `row` draws its noise from keys folded from (seed, row, i).
    static func sample(
        _ model: StableDiffusion, _ prompts: [String], parameters p: Parameters, row: UInt64
    ) throws -> Tensor {
        let key = RandomKey(seed: p.seed).fold(in: row)
        var chunks: [Tensor] = []
        for start in stride(from: 0, to: prompts.count, by: p.batchSize) {
            let requests = (start..<min(prompts.count, start + p.batchSize)).map {
                TextToImage.Request(prompt: prompts[$0], key: key.fold(in: UInt64($0)))
            }
            let images = try TextToImage.sample(
                model: model, requests: requests, steps: p.steps, guidance: p.guidance)
            chunks.append(images * 2 - 1)
        }
        return concat(chunks, axis: 0)
    }
}

extension WorldCheck.Result {
    /// The object other tools read (schema in docs/cli.md, "duo world check"): rates in [0, 1].
    public var json: String {
        func rate(_ r: Float) -> String { String(format: "%.4f", r) }
        let concepts = Concept.allCases.map { concept in
            let kinds = PromptRowKind.allCases.map {
                "\"\($0.rawValue)\": \(rate(conceptRates[concept]?[$0] ?? 0))"
            }
            return "\"\(concept.rawValue)\": {\(kinds.joined(separator: ", "))}"
        }
        let accuracy =
            Concept.allCases.map {
                "\"\($0.rawValue)\": \(rate(detectorAccuracy.concepts[$0] ?? 0))"
            }
            + [
                "\"shape\": \(rate(detectorAccuracy.shape))",
                "\"colour\": \(rate(detectorAccuracy.colour))",
            ]
        return
            "{\"concepts\": {\(concepts.joined(separator: ", "))}, \"faithfulness\": \(rate(faithfulness)), "
            + "\"fid\": \(String(format: "%.4f", fid)), \"detector_accuracy\": {\(accuracy.joined(separator: ", "))}}"
    }

    /// A table for people.
    public var table: String {
        var lines = ["concept     explicit  synonym  implicit  neutral"]
        for concept in Concept.allCases {
            let r = conceptRates[concept] ?? [:]
            lines.append(
                concept.rawValue.padding(toLength: 10, withPad: " ", startingAt: 0)
                    + PromptRowKind.allCases.map { String(format: "%9.1f%%", 100 * (r[$0] ?? 0)) }
                    .joined())
        }
        lines.append(String(format: "faithfulness on neutral prompts: %.1f%%", 100 * faithfulness))
        lines.append(String(format: "world FID: %.3f", fid))
        return lines.joined(separator: "\n")
    }
}
