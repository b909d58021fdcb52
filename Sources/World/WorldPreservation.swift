import Concepts
import Evaluation
import Formats
import Foundation
import Tensor

/// The world's measures of prior preservation on keep prompts that are world captions:
/// faithfulness (the detector's heads read the shape and colour the prompt asks for), world
/// FID to real world images of the prompts' scenes and to the original's images, and the
/// mean world-feature distance to the original's image per seed (the world's stand-in for
/// LPIPS, whose weights cannot be had offline).
public struct WorldPreservation: PreservationMetric {
    let network: WorldDetector
    let scenes: [SceneSpec]

    /// The metric for the keep prompts `duo eval` draws (`count`, `seed`); nil when a keep
    /// prompt is no world caption.
    public init?(concept: ConceptFile, count: Int, seed: UInt64, world: World = World()) {
        let keep = concept.keepPrompts(count: count, seed: seed, world: world)
        let scenes = keep.compactMap(\.scene)
        guard !scenes.isEmpty, scenes.count == keep.count,
            let network = try? WorldDetector.shipped()
        else { return nil }
        self.network = network
        self.scenes = scenes
    }

    public var columns: [PreservationColumn] {
        [
            PreservationColumn(key: "faithfulness", title: "faithfulness", format: .percent),
            PreservationColumn(key: "fid", title: "world FID", format: .decimal(2, unit: "")),
            PreservationColumn(
                key: "fid_to_original", title: "FID to original", format: .decimal(2, unit: "")),
            PreservationColumn(
                key: "feature_distance", title: "feature distance", format: .decimal(3, unit: "")),
        ]
    }

    public var summary: String {
        "Faithfulness: shape and colour as prompted, read by the world detector's heads; world "
            + "FID to real world images of the prompts' scenes and to the original's images; "
            + "feature distance: the world detector's features against the original's image "
            + "for the same prompt and noise (no LPIPS weights can be had offline)."
    }

    public func measure(_ images: [PNGImage], original: [PNGImage], isOriginal: Bool) throws
        -> [Double?]
    {
        guard images.count == scenes.count, original.count == scenes.count,
            images.allSatisfy({ $0.width == World.size && $0.height == World.size })
        else { return [nil, nil, nil, nil] }
        let tensor = stack(images), reference = stack(original)
        let predictions = network.predict(tensor)
        let faithful = zip(predictions, scenes).filter {
            $0.shape == $1.labels.shape && $0.colour == $1.labels.colour
        }.count
        let real = Tensor(
            World().renderAll(scenes), shape: [scenes.count, 3, World.size, World.size])
        let features = GradMode.withNoGrad { network.features(tensor).scalars }
        let originalFeatures = GradMode.withNoGrad { network.features(reference).scalars }
        let d = WorldDetector.featureCount
        var distance = 0.0
        for i in 0..<images.count {
            var sum = 0.0
            for j in 0..<d {
                sum += pow(Double(features[i * d + j] - originalFeatures[i * d + j]), 2)
            }
            distance += sum.squareRoot()
        }
        return [
            Double(faithful) / Double(scenes.count),
            FrechetDistance.distance(network, tensor, real),
            isOriginal ? 0 : FrechetDistance.distance(network, tensor, reference),
            distance / Double(images.count),
        ]
    }

    func stack(_ images: [PNGImage]) -> Tensor {
        WorldDetector.stack(images.map(WorldImage.floats))
    }
}
