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
        if let other = RunFolder.unmarkedFile(in: directory, entries: entries) {
            return "holds \(other), which duo unlearn did not write; give another --out"
        }
        guard !replacing, FileManager.default.fileExists(atPath: checkpointPath) else { return nil }
        let saved = try SafeTensorsReader(path: checkpointPath).metadata
        guard let key = metadata.keys.sorted().first(where: { saved[$0] != metadata[$0] }) else {
            return nil
        }
        return "holds a run with \(key) \(saved[key] ?? "unset") (this one: \(metadata[key]!)); "
            + "give another --out, or --force to replace that run"
    }

    /// Removes an earlier run's files before a run that starts over (not a resume), so
    /// that one that fails leaves only its own: never one run's log beside another's
    /// weights and checkpoint.
    public func clearEarlierRun() {
        for name in RunFolder.files {
            try? FileManager.default.removeItem(atPath: directory + "/" + name)
        }
    }
}

public enum RunFolder {
    /// The files a run writes into its folder: the trained weights (a LoRA adapter, or
    /// ESD's full-rank UNet weights), its settings, log, curves and checkpoint.
    public static let files: Set<String> = [
        "adapter.safetensors", "unet.safetensors", "config.json", "train.jsonl", "train.svg",
        "checkpoint.safetensors",
    ]

    /// The first of the run files present in `directory` that a run did not write, nil
    /// when each carries a run's marks: weights and checkpoints with the run's `method` in
    /// their metadata, a config naming its method and concept, a log of step records. The
    /// curves have no mark of their own; they count as a run's beside a marked file.
    static func unmarkedFile(in directory: String, entries: [String]) -> String? {
        var marked = false
        for name in entries.sorted() where files.contains(name) {
            let path = directory + "/" + name
            let owned: Bool
            switch name {
            case "config.json":
                guard let data = FileManager.default.contents(atPath: path),
                    case .object(let members)? = try? JSONParser.parse(Array(data))
                else { return name }
                let keys = Set(members.map(\.key))
                owned = keys.contains("method") && keys.contains("concept")
            case "train.jsonl":
                let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? "?"
                owned = text.isEmpty || text.hasPrefix("{\"step\": ")
            case "train.svg":
                continue
            default:
                owned = (try? SafeTensorsReader(path: path).metadata["method"]) != nil
            }
            guard owned else { return name }
            marked = marked || name != "train.jsonl"
        }
        return !marked && entries.contains("train.svg") ? "train.svg" : nil
    }
}

extension UnlearningTrainer: TrainingRun {}
