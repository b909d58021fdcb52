import Formats
import Foundation

extension StableDiffusion {
    /// duo's own defaults for a model (`ModelDefaults` reads them): settings, not the
    /// model, so not part of its digest.
    public static let defaultsFileName = "duo_defaults.json"

    /// The SHA-256 of every file in the model folder (weights, configs, tokenizer), in
    /// path order: what pair manifests and adapter configs record as the model's identity,
    /// so that outputs of another model are never mixed with these.
    public static func weightsDigest(directory: String) throws -> String {
        let root = URL(fileURLWithPath: directory).standardizedFileURL
        guard
            let walker = FileManager.default.enumerator(
                at: root, includingPropertiesForKeys: [.isRegularFileKey],
                options: [.skipsHiddenFiles])
        else { throw ModelError(file: directory, "cannot list the model folder") }
        var files: [(name: String, path: String)] = []
        for case let url as URL in walker {
            guard (try? url.resourceValues(forKeys: [.isRegularFileKey]))?.isRegularFile == true
            else { continue }
            let path = url.standardizedFileURL.path
            let name = String(path.dropFirst(root.path.count + 1))
            guard name != defaultsFileName else { continue }
            files.append((name, path))
        }
        files.sort { $0.name < $1.name }
        return try FileDigest.sha256(ofFiles: files.map(\.path), names: files.map(\.name))
    }
}
