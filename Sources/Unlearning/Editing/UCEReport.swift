import Diffusion
import Formats
import Foundation

/// What `duo unlearn --method uce` leaves in its folder: adapter.safetensors (a UNet
/// weights file holding the edited attn2 to_k / to_v weights), config.json (the settings
/// and the model's digest) and report.md (the token positions used and how far each
/// projection moved).
public enum UCEReport {
    /// The files it writes; any other file in the folder is not its to replace.
    public static let files: Set<String> = ["adapter.safetensors", "config.json", "report.md"]

    /// config.json's text for a run: the concept, the settings, then `identity`.
    public static func config(concept: String, _ settings: UCESettings, identity: JSONFields)
        -> String
    {
        JSONValue.object([("concept", .string(concept))] + settings.fields + identity).text()
    }

    /// Why the run may not write into `directory`, nil when it may: files no UCE run
    /// writes, or (unless `replacing`) another run's config.json.
    public static func folderConflict(_ directory: String, config: String, replacing: Bool)
        -> String?
    {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let foreign = entries.filter { !$0.hasPrefix(".") && !files.contains($0) }.sorted()
        if !foreign.isEmpty {
            return "holds files duo unlearn --method uce does not write ("
                + "\(foreign.prefix(3).joined(separator: ", "))); give another --out"
        }
        if let other = RunFolder.unmarkedFile(in: directory, entries: entries) {
            return "holds \(other), which duo unlearn did not write; give another --out"
        }
        let path = directory + "/config.json"
        guard !replacing, let old = try? String(contentsOfFile: path, encoding: .utf8),
            old != config
        else { return nil }
        return "holds a run with other settings (its config.json differs); "
            + "give another --out, or --force to replace that run"
    }

    /// Writes the three files, each atomically; config.json last, so that a folder with
    /// it holds a finished run.
    public static func write(
        _ result: UnifiedConceptEditing.Result, _ settings: UCESettings, config: String,
        seconds: Double, to directory: String
    ) throws {
        let metadata = Dictionary(
            settings.fields.map { ($0.key, $0.value.line) }, uniquingKeysWith: { a, _ in a })
        try UNetWeightsFile.save(
            result.layers.map { ($0.key, $0.weight) }, to: directory + "/adapter.safetensors",
            metadata: metadata)
        try AtomicFile.write(
            markdown(result, settings, seconds: seconds), to: directory + "/report.md")
        try AtomicFile.write(config, to: directory + "/config.json")
    }

    /// The report: settings, token positions per erased concept, one row per projection.
    static func markdown(
        _ result: UnifiedConceptEditing.Result, _ settings: UCESettings, seconds: Double
    ) -> String {
        func quoted(_ text: String) -> String { text.isEmpty ? "(empty prompt)" : "\"\(text)\"" }
        var lines = [
            "# UCE edit", "",
            "Closed-form edit of \(result.layers.count) cross-attention projections "
                + "(attn2 to_k, to_v) in \(String(format: "%.2f", seconds)) s: "
                + "λ \(settings.lambda), erase scale \(settings.eraseScale), "
                + "preserve scale \(settings.resolvedPreserveScale), technique "
                + "\(settings.technique.rawValue). Preserved: "
                + ([""] + settings.preserve).map(quoted).joined(separator: ", ") + ".", "",
            "| erased | guide | erased from position | guide from position | positions |",
            "|---|---|---|---|---|",
        ]
        for (i, p) in result.positions.enumerated() {
            lines.append(
                "| \(quoted(settings.erase[i])) | \(quoted(settings.guide[i])) | \(p.erase) "
                    + "| \(p.guide) | \(p.count) |")
        }
        lines += [
            "",
            "Per projection: ‖ΔW‖/‖W‖; erase error ‖W k − v*‖/‖v*‖ before → after; "
                + "preserve drift ‖ΔW e‖/‖W e‖.", "",
            "| projection | ‖ΔW‖/‖W‖ | erase error | preserve drift |", "|---|---|---|---|",
        ]
        for layer in result.layers {
            lines.append(
                "| \(layer.key) | \(String(format: "%.4g", layer.relativeChange)) "
                    + "| \(String(format: "%.4g → %.4g", layer.eraseErrorBefore, layer.eraseErrorAfter)) "
                    + "| \(String(format: "%.4g", layer.preserveDrift)) |")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
