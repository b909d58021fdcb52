import Formats
import Foundation

/// What an output folder of `duo unlearn` may already hold, checked before a run writes
/// into it: a run never replaces files it did not write, nor, unasked, another run's.
extension UnlearningTrainer {
    /// The files a run writes into its folder.
    public static let runFiles: Set<String> = [
        "adapter.safetensors", "config.json", "train.jsonl", "train.svg", "checkpoint.safetensors",
    ]

    /// Why this run may not write into its folder, nil when it may: the folder holds files
    /// no run writes, or (unless `replacing`) a checkpoint of a run with other settings.
    public func folderConflict(replacing: Bool) throws -> String? {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let foreign = entries.filter { !$0.hasPrefix(".") && !Self.runFiles.contains($0) }.sorted()
        if !foreign.isEmpty {
            return
                "holds files duo unlearn does not write (\(foreign.prefix(3).joined(separator: ", "))); give another --out"
        }
        guard !replacing, FileManager.default.fileExists(atPath: checkpointPath) else { return nil }
        let saved = try SafeTensorsReader(path: checkpointPath).metadata
        guard let key = metadata.keys.sorted().first(where: { saved[$0] != metadata[$0] }) else {
            return nil
        }
        return "holds a run with \(key) \(saved[key] ?? "unset") (this one: \(metadata[key]!)); "
            + "give another --out, or --force to replace that run"
    }
}
