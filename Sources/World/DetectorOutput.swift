import Formats
import Foundation

extension DetectorPrediction {
    /// The detector line protocol: one JSON object per image,
    /// `{"path": P, "scores": {CONCEPT: p, ...}, "shape": S, "colour": C}`, with the scores
    /// of `concepts` only (in the order given), as an external detector prints them.
    public func jsonLine(path: String, concepts: [Concept] = Concept.allCases) -> String {
        let scores = concepts.map { concept in
            jsonQuoted(concept.rawValue) + ": " + String(format: "%.6f", self.scores[concept] ?? 0)
        }
        return "{\"path\": \(jsonQuoted(path)), \"scores\": {\(scores.joined(separator: ", "))}, "
            + "\"shape\": \(jsonQuoted(shape.rawValue)), "
            + "\"colour\": \(jsonQuoted(colour.rawValue))}"
    }
}

extension WorldDetector {
    /// Reads a world image from a PNG file: [3, 32, 32] floats in [-1, 1]. Fails naming
    /// the file when it is unreadable or not 32x32.
    public static func image(contentsOf path: String) throws -> [Float] {
        let png = try PNGImage(contentsOf: path)
        guard png.width == World.size, png.height == World.size else {
            throw FormatError(
                .invalidArgument, path: path,
                reason:
                    "expected a \(World.size)x\(World.size) world image, "
                    + "found \(png.width)x\(png.height)"
            )
        }
        return WorldImage.floats(png)
    }
}
