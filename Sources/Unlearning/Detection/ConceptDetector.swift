import Concepts
import Formats
import Foundation

/// Says how strongly images show a concept: the judge of `duo synthesize`'s filter and of
/// `duo eval`'s defense rate. An external process for real models (`DetectorProcess`), or
/// one a model's world builds in (`BuiltinDetectors`).
public protocol ConceptDetector: AnyObject {
    /// What judged the images, for manifests and reports ("builtin:stripes", the command
    /// and what the detector declared about itself).
    var identity: String { get }

    /// What the detector says it is (name, version, its own settings), once it has said
    /// so; nil for one that does not (`DetectorDeclaration`).
    var declaration: DetectorDeclaration? { get }

    /// One score in [0, 1] per image file (PNG), in order.
    func scores(paths: [String]) throws -> [Double]

    /// One score per image in memory. The default writes them to PNG files in a scratch
    /// folder and scores the files (what an external process needs).
    func scores(images: [PNGImage]) throws -> [Double]
}

extension ConceptDetector {
    public var declaration: DetectorDeclaration? { nil }

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

/// The detectors a model's world builds in, by the name a concept file gives in
/// `[detector] builtin = NAME`.
public protocol BuiltinDetectors {
    /// The names it knows, for error messages.
    var names: [String] { get }

    /// The detector of that name, nil when there is none.
    func detector(named name: String) throws -> ConceptDetector?
}

/// A detector that cannot judge: a process that crashed, hung or printed garbage, or
/// an image it cannot read, in one line.
public typealias DetectorError = OneLineError

extension ConceptFile {
    /// The detector this concept file asks for: one of `builtins` by name, or the external
    /// command (started now, stopped when the detector is released). A file that names
    /// none gets the built-in detector of its own name, where `builtins` has one.
    public func makeDetector(builtins: BuiltinDetectors?) throws -> ConceptDetector {
        switch detector.kind {
        case .unspecified where builtins == nil:
            throw DetectorError(
                "\(path) names no detector ([detector] command = \"CMD\") and this model has no built-in one"
            )
        case .unspecified:
            return try builtinDetector(name, builtins: builtins)
        case .builtin(let name):
            return try builtinDetector(name, builtins: builtins)
        case .command(let command):
            return try DetectorProcess(
                command: command, timeout: detector.timeout, environment: detectorEnvironment)
        }
    }

    /// What a detector command gets besides duo's own environment: `DUO_CONCEPT_DIR`, the
    /// absolute path of this file's folder, so that a command can name a script kept beside
    /// the concept file whatever folder duo runs in.
    public var detectorEnvironment: [String: String] {
        let folder = PathText.parent(path)
        let cwd = FileManager.default.currentDirectoryPath
        let absolute =
            folder.hasPrefix("/") ? folder : folder.isEmpty ? cwd : cwd + "/" + folder
        return ["DUO_CONCEPT_DIR": absolute]
    }

    private func builtinDetector(_ name: String, builtins: BuiltinDetectors?) throws
        -> ConceptDetector
    {
        guard let found = try builtins?.detector(named: name) else {
            let known = builtins.map { " (built-in: \($0.names.joined(separator: ", ")))" }
            throw DetectorError(
                "\(path): no built-in detector for '\(name)'\(known ?? " (this model has none)"); "
                    + "name one in [detector] (builtin = NAME or command = \"CMD\")")
        }
        return found
    }
}
