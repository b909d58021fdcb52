import Concepts
import Formats
import Foundation
import World

/// Where `--concept NAME|PATH` and `--model` point, shared by the subcommands.
enum Lookup {
    /// A concept file from a path (anything with a '/' or ending in .toml), or a name looked
    /// up as `concepts/NAME.toml` in the current folder, then among the concept files that
    /// ship with duo.
    static func concept(_ nameOrPath: String) throws -> ConceptFile {
        if nameOrPath.contains("/") || nameOrPath.hasSuffix(".toml") {
            return try ConceptFile(contentsOf: nameOrPath)
        }
        let local = "concepts/\(nameOrPath).toml"
        if FileManager.default.fileExists(atPath: local) {
            return try ConceptFile(contentsOf: local)
        }
        guard let shipped = ShippedConcepts.path(nameOrPath) else {
            throw UsageError(
                "unknown concept '\(nameOrPath)': no \(local) here and none ships with duo "
                    + "(shipped: \(ShippedConcepts.names.joined(separator: ", ")); or give a path to a .toml file)"
            )
        }
        return try ConceptFile(contentsOf: shipped)
    }

    /// `--model`, or the embedded default that ships with duo.
    static func model(_ option: String?) throws -> String {
        try option ?? EmbeddedModel.shippedDirectory()
    }
}

/// A bad option value or an unknown concept, reported in one line (ArgumentParser's
/// ValidationError adds the usage text below it).
typealias UsageError = OneLineError
