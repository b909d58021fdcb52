import Diffusion
import Formats
import Foundation

extension WorldDetector {
    /// The file name of the shipped weights, in the World target's `Resources` folder.
    public static let shippedFileName = "detector.safetensors"

    /// A detector with the weights in `path` (a safetensors file written by `save`).
    public static func load(from path: String) throws -> WorldDetector {
        let detector = WorldDetector(key: nil)
        try WeightLoading.load(detector, from: SafeTensorsReader(path: path))
        return detector
    }

    /// Writes the weights to `path` (atomically), with `metadata` in the header.
    public func save(to path: String, metadata: [String: String] = [:]) throws {
        try WeightLoading.save(self, to: path, metadata: metadata)
    }

    /// The detector trained by `DetectorTraining` that ships with the package.
    public static func shipped() throws -> WorldDetector {
        guard
            let path = Bundle.module.path(forResource: "Resources/" + shippedFileName, ofType: nil)
        else {
            throw FormatError(
                .fileNotFound, path: "Resources/\(shippedFileName)",
                reason: "the World module's resource bundle holds no detector weights")
        }
        return try load(from: path)
    }
}
