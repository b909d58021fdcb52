import Concepts
import Formats
import Unlearning

/// The world's built-in detectors: one head of the shipped world detector per world
/// concept (`[detector] builtin = "stripes"`).
public struct WorldDetectors: BuiltinDetectors {
    public init() {}

    public var names: [String] { Concept.allCases.map(\.rawValue) }

    public func detector(named name: String) throws -> ConceptDetector? {
        guard let concept = Concept(rawValue: name) else { return nil }
        return WorldConceptDetector(concept: concept, network: try WorldDetector.shipped())
    }
}

/// The world detector's head for one concept: reads 32x32 world images only.
public final class WorldConceptDetector: ConceptDetector {
    public let concept: Concept
    let network: WorldDetector

    public init(concept: Concept, network: WorldDetector) {
        self.concept = concept
        self.network = network
    }

    public var identity: String { "builtin:\(concept.rawValue)" }

    public func scores(paths: [String]) throws -> [Double] {
        try scores(images: paths.map { try PNGImage(contentsOf: $0) })
    }

    public func scores(images: [PNGImage]) throws -> [Double] {
        let floats = try images.enumerated().map { i, image in
            guard image.width == World.size, image.height == World.size else {
                throw DetectorError(
                    "the built-in \(concept.rawValue) detector reads \(World.size)x\(World.size) "
                        + "world images; image \(i) is \(image.width)x\(image.height) "
                        + "(a model that draws other images needs a --detector of its own)")
            }
            return WorldImage.floats(image.rgb())
        }
        return network.predict(images: floats).map { Double($0.scores[concept] ?? 0) }
    }
}

/// The share of pairs whose two images the world detector reads as the same shape and
/// colour: how much of a world scene an SDEdit pair kept besides the concept.
public struct WorldPairAgreement: PairAgreement {
    public init() {}

    public var measure: String { "shape and colour" }

    public func agreement(unsafe: [PNGImage], safe: [PNGImage]) -> Double? {
        guard !unsafe.isEmpty,
            (unsafe + safe).allSatisfy({ $0.width == World.size && $0.height == World.size }),
            let network = try? WorldDetector.shipped()
        else { return nil }
        let a = network.predict(images: unsafe.map { WorldImage.floats($0) })
        let b = network.predict(images: safe.map { WorldImage.floats($0) })
        let same = zip(a, b).filter { $0.shape == $1.shape && $0.colour == $1.colour }.count
        return Double(same) / Double(unsafe.count)
    }
}
