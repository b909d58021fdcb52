import Formats
import Foundation
import World

/// Where `--concept NAME|PATH` and `--model` point, shared by the subcommands.
enum Lookup {
    /// The package's `concepts/` folder, known at build time: found when duo runs from
    /// anywhere on the machine it was built on.
    static let packageConcepts = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("concepts").path

    /// A concept file from a path (anything with a '/' or ending in .toml), or a name looked
    /// up as `concepts/NAME.toml` in the current folder, then in the package's.
    static func concept(_ nameOrPath: String) throws -> ConceptFile {
        if nameOrPath.contains("/") || nameOrPath.hasSuffix(".toml") {
            return try ConceptFile(contentsOf: nameOrPath)
        }
        let candidates = ["concepts", packageConcepts].map { "\($0)/\(nameOrPath).toml" }
        guard let path = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            let known = ((try? FileManager.default.contentsOfDirectory(atPath: packageConcepts)) ?? [])
                .filter { $0.hasSuffix(".toml") }.map { String($0.dropLast(5)) }.sorted()
            throw UsageError(
                "unknown concept '\(nameOrPath)': no \(candidates.joined(separator: " or ")) "
                    + "(known: \(known.joined(separator: ", ")); or give a path to a .toml file)")
        }
        return try ConceptFile(contentsOf: path)
    }

    /// `--model`, or the embedded default that ships with duo.
    static func model(_ option: String?) throws -> String {
        try option ?? EmbeddedModel.shippedDirectory()
    }
}

/// A bad option value or an unknown concept, reported in one line (ArgumentParser's
/// ValidationError adds the usage text below it).
typealias UsageError = OneLineError
