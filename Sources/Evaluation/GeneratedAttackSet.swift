import Foundation

/// The attack sets `duo attack` writes, by its subcommands' names. A concept file may name
/// one before it has been made; `duo eval` then skips it and says so.
public enum GeneratedAttackSet {
    public static let ringABell = "ring-a-bell"
    public static let unlearnDiff = "unlearndiff"
    public static let conceptInversion = "concept-inversion"
    public static let names: Set<String> = [ringABell, unlearnDiff, conceptInversion]

    /// Where a set's learned token embeddings are kept (concept inversion): beside the
    /// prompt file, with the extension `.safetensors`.
    public static func embeddingsPath(forSet path: String) -> String {
        (path as NSString).deletingPathExtension + ".safetensors"
    }
}
