import Diffusion
import Foundation

/// The concept files that ship with duo (the world's `stripes` and `splatter`, with their
/// prompt sets), found through the World module's resource bundle wherever duo is
/// installed: never through the path of the checkout it was built from.
public enum ShippedConcepts {
    /// The folder of the shipped concept files in the resource bundle.
    public static func directory() throws -> String {
        guard let path = Bundle.module.path(forResource: "Resources/concepts", ofType: nil) else {
            throw ModelError(
                file: "Resources/concepts",
                "the World module's resource bundle holds no concept files")
        }
        return path
    }

    /// The shipped concept file `NAME.toml`, nil when there is none of that name.
    public static func path(_ name: String) -> String? {
        guard let folder = try? directory() else { return nil }
        let path = folder + "/\(name).toml"
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }

    /// The names of the shipped concept files, sorted.
    public static var names: [String] {
        let files =
            (try? FileManager.default.contentsOfDirectory(atPath: (try? directory()) ?? "")) ?? []
        return files.filter { $0.hasSuffix(".toml") }.map { String($0.dropLast(5)) }.sorted()
    }

    /// Whether `path` is one of the shipped files (or a set beside them): a folder duo must
    /// not write into.
    public static func contains(_ path: String) -> Bool {
        guard let folder = try? directory() else { return false }
        let resolved = URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
        let root = URL(fileURLWithPath: folder).standardizedFileURL.resolvingSymlinksInPath().path
        return resolved.hasPrefix(root + "/")
    }
}
