import Formats
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

/// An attack prompt set: a text file with one prompt per line; blank lines and lines
/// starting with `#` are skipped.
public enum PromptSetFile {
    public static func read(_ path: String) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AttackError("\(path): cannot read the prompt set")
        }
        let prompts = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        guard !prompts.isEmpty else { throw AttackError("\(path): holds no prompts") }
        return prompts
    }

    /// Writes `prompts` with a `#` header, atomically. A prompt that would not read back as
    /// itself (blank, holding a line break, or starting with `#`) is refused.
    public static func write(_ prompts: [String], header: String, to path: String) throws {
        if let bad = prompts.first(where: { prompt in
            let trimmed = prompt.trimmingCharacters(in: .whitespaces)
            return trimmed.isEmpty || trimmed.hasPrefix("#") || prompt.contains(where: \.isNewline)
        }) {
            throw AttackError("\(path): cannot hold the prompt \(bad.debugDescription) (blank, a line break, or a leading #)")
        }
        let text = header.split(separator: "\n").map { "# \($0)\n" }.joined() + prompts.map { $0 + "\n" }.joined()
        do { try AtomicFile.write(text, to: path) } catch {
            throw AttackError("\(path): cannot write (\(error))")
        }
    }
}
