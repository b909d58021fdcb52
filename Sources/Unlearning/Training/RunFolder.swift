import Formats
import Foundation

/// A trainer writing into a run folder of `duo unlearn` (DUO's or ESD's).
public protocol TrainingRun {
    var directory: String { get }
    /// The settings and identity a checkpoint is saved with; a resume must match them.
    var metadata: [String: String] { get }
}

extension TrainingRun {
    var checkpointPath: String { directory + "/checkpoint.safetensors" }
    var log: TrainingLog { TrainingLog(path: directory + "/train.jsonl") }

    /// Why this run may not write into its folder, nil when it may: the folder holds files
    /// no run writes, or (unless `replacing`) a checkpoint of a run with other settings.
    /// A run never replaces files it did not write, nor, unasked, another run's.
    public func folderConflict(replacing: Bool) throws -> String? {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let foreign = entries.filter { !$0.hasPrefix(".") && !RunFolder.files.contains($0) }
            .sorted()
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

public enum RunFolder {
    /// The files a run writes into its folder: the trained weights (a LoRA adapter, or
    /// ESD's full-rank UNet weights), its settings, log, curves and checkpoint.
    public static let files: Set<String> = [
        "adapter.safetensors", "unet.safetensors", "config.json", "train.jsonl", "train.svg",
        "checkpoint.safetensors",
    ]
}

extension UnlearningTrainer: TrainingRun {}
