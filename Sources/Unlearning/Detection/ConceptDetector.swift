import Formats
import Foundation
import World

/// Says how strongly images show a concept: the judge of `duo synthesize`'s filter and of
/// `duo eval`'s defense rate. Built in for the embedded world, or an external process
/// for real models (`DetectorProcess`).
public protocol ConceptDetector: AnyObject {
    /// What judged the images, for manifests and reports ("builtin:stripes", the command).
    var identity: String { get }

    /// One score in [0, 1] per image file (PNG), in order.
    func scores(paths: [String]) throws -> [Double]

    /// One score per image in memory. The default writes them to PNG files in a scratch
    /// folder and scores the files (what an external process needs).
    func scores(images: [PNGImage]) throws -> [Double]
}

extension ConceptDetector {
    public func scores(images: [PNGImage]) throws -> [Double] {
        let folder =
            NSTemporaryDirectory() + "duo-detect-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let paths = try images.enumerated().map { i, image in
            let path = folder + "/\(i).png"
            try image.write(to: path)
            return path
        }
        return try scores(paths: paths)
    }
}

/// The built-in world detector's head for one concept.
public final class BuiltinConceptDetector: ConceptDetector {
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
                        + "world images; image \(i) is \(image.width)x\(image.height)")
            }
            return WorldImage.floats(image.rgb())
        }
        return network.predict(images: floats).map { Double($0.scores[concept] ?? 0) }
    }
}

/// A detector that cannot judge: a process that crashed, hung or printed garbage, or
/// an image it cannot read, in one line.
public typealias DetectorError = OneLineError

extension ConceptFile {
    /// The detector this concept file asks for: the shipped world detector's head, or the
    /// external command (started now, stopped when the detector is released).
    public func makeDetector() throws -> ConceptDetector {
        switch detector.kind {
        case .builtin(let name):
            guard let concept = Concept(rawValue: name) else {
                let known = Concept.allCases.map(\.rawValue).joined(separator: ", ")
                throw DetectorError(
                    "\(path): no built-in detector for '\(name)' (built-in: \(known)); "
                        + "name one in [detector] (builtin = NAME or command = \"CMD\")")
            }
            return BuiltinConceptDetector(concept: concept, network: try WorldDetector.shipped())
        case .command(let command):
            return try DetectorProcess(command: command, timeout: detector.timeout)
        }
    }
}
