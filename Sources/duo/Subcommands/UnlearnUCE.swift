import ArgumentParser
import Concepts
import Diffusion
import Formats
import Foundation
import Unlearning

/// `duo unlearn --method uce`'s own options: UCE's concepts and weights, each overriding
/// the concept file's `[uce]` table.
struct UCEOptions: ParsableArguments {
    @Option(
        name: .customLong("uce-erase"),
        help:
            "A concept to erase (repeatable; default: the concept file's [uce] erase, else its explicit words)."
    )
    var erase: [String] = []

    @Option(
        name: .customLong("uce-guide"),
        help:
            "The concept the erased ones are mapped to: one for all, or one per --uce-erase (default: the empty prompt, UCE's)."
    )
    var guide: [String] = []

    @Option(
        name: .customLong("uce-preserve"),
        help:
            "A concept to keep (repeatable; the empty prompt is always kept, and \"\" alone keeps only it, UCE's default; default: the concept file's [uce] preserve, else none, UCE's for non-art concepts; the embedded world's stripes and splatter files preserve the world's shape and colour words, which UCE's script does not)."
    )
    var preserve: [String] = []

    @Option(
        name: .customLong("uce-lambda"),
        help: "UCE's λ, the weight on the original weights (default: 0.5, UCE's).")
    var lambda: Double?

    @Option(
        name: .customLong("uce-erase-scale"), help: "Weight of the erase terms (default: 1, UCE's)."
    )
    var eraseScale: Double?

    @Option(
        name: .customLong("uce-preserve-scale"),
        help: "Weight of the preserve terms (default: max(0.1, 1/(1 + preserved concepts)), UCE's)."
    )
    var preserveScale: Double?

    @Option(
        name: .customLong("uce-technique"),
        help: "replace (v* = the guide's projection, UCE's default) or tensor.")
    var technique: UCESettings.Technique?

    func validate() throws {
        for (value, name) in [
            (lambda, "--uce-lambda"), (eraseScale, "--uce-erase-scale"),
            (preserveScale, "--uce-preserve-scale"),
        ] {
            if let value, !(value >= 0 && value.isFinite) {
                throw UsageError("\(name) must be a finite number >= 0, got \(value)")
            }
        }
        if erase.contains(where: { $0.trimmingCharacters(in: .whitespaces).isEmpty }) {
            throw UsageError("--uce-erase must not be empty")
        }
        if preserve.count > 1,
            preserve.contains(where: { $0.trimmingCharacters(in: .whitespaces).isEmpty })
        {
            throw UsageError(
                "--uce-preserve: an empty prompt is kept anyway (give \"\" alone to keep only it)")
        }
    }

    var overrides: UCESettings.Overrides {
        var o = UCESettings.Overrides()
        (o.erase, o.guide) = (erase, guide)
        if !preserve.isEmpty { o.preserve = preserve == [""] ? [] : preserve }
        (o.lambda, o.eraseScale, o.preserveScale) = (lambda, eraseScale, preserveScale)
        o.technique = technique
        return o
    }
}

extension UCESettings.Technique: ExpressibleByArgument {}

extension Duo.Unlearn {
    /// UCE: the closed-form edit, written as a UNet weights file with config.json and
    /// report.md into `adapters/NAME/uce` (or --out). Seconds; no pairs.
    func runUCE() throws {
        let conceptFile = try conceptOption.load()
        let settings: UCESettings
        do {
            settings = try UCESettings.merged(concept: conceptFile, options: uce.overrides)
        } catch let error as UCEError {
            // An option's fault names the option; any other is in the concept file's table.
            let text = "\(error)"
            throw UsageError(text.contains("--uce-") ? text : "\(conceptFile.path): \(text)")
        }
        let modelDirectory = try modelOption.directory()
        let diffusion = try StableDiffusion.load(directory: modelDirectory)
        let directory = out ?? "adapters/\(conceptFile.name)/uce"
        let made = try OutputFolder.create(directory, for: "the output folder")
        defer { if made { OutputFolder.removeIfUnused(directory) } }
        let lock = try OutputFolder.lock(directory, for: "the output folder")
        defer { lock.release() }
        let config = UCEReport.config(
            concept: conceptFile.name, settings,
            identity: [
                ("model", .string(try modelOption.recordedName())),
                (
                    "model_sha256",
                    .string(try StableDiffusion.weightsDigest(directory: modelDirectory))
                ),
            ])
        if let conflict = UCEReport.folderConflict(directory, config: config, replacing: force) {
            throw UsageError("\(directory) \(conflict)")
        }
        let start = Date()
        let result = try UnifiedConceptEditing.edit(diffusion, settings)
        try UCEReport.write(
            result, settings, config: config, seconds: Date().timeIntervalSince(start),
            to: directory)
        print(directory + "/adapter.safetensors")
    }
}
