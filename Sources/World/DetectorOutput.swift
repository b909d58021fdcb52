import Formats
import Foundation

extension DetectorPrediction {
    /// The detector line protocol: one JSON object per image,
    /// `{"path": P, "scores": {CONCEPT: p, ...}, "shape": S, "colour": C}`, with the scores
    /// of `concepts` only (in the order given), as an external detector prints them.
    public func jsonLine(path: String, concepts: [Concept] = Concept.allCases) -> String {
        let scores: JSONFields = concepts.map {
            ($0.rawValue, .number(Double(self.scores[$0] ?? 0), format: "%.6f"))
        }
        return JSONValue.object([
            ("path", .string(path)), ("scores", .object(scores)),
            ("shape", .string(shape.rawValue)),
            ("colour", .string(colour.rawValue)),
        ]).line
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
