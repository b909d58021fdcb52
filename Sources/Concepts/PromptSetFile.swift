import Formats
import Foundation

/// A prompt set (attack or evaluation prompts): a text file with one prompt per line (blank
/// lines and lines starting with `#` are skipped), or a CSV file in I2P's or
/// UnlearnDiffAtk's layout (`PromptSetFile.rows`).
public enum PromptSetFile {
    /// The prompts of a set, text or CSV.
    public static func read(_ path: String) throws -> [String] {
        if isTable(path) { return try rows(path).rows.map(\.prompt) }
        return try readText(path)
    }

    /// Whether `path` is read as a CSV table (by its extension).
    public static func isTable(_ path: String) -> Bool { path.lowercased().hasSuffix(".csv") }

    /// The rows of a set and the columns its file has (a text set: "prompt" only).
    public static func rows(_ path: String) throws -> (rows: [PromptRow], columns: Set<String>) {
        guard isTable(path) else {
            return (try readText(path).map(PromptRow.init(prompt:)), ["prompt"])
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw PromptSetError("\(path): cannot read the prompt set")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw PromptSetError("\(path): is not UTF-8 text")
        }
        let table = try CSVTable(parsing: text, path: path)
        let rows = try PromptTable(table: table, path: path).rows()
        guard !rows.isEmpty else { throw PromptSetError("\(path): holds no prompts") }
        return (rows, Set(table.columns))
    }

    static func readText(_ path: String) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw PromptSetError("\(path): cannot read the prompt set")
        }
        // Decoded strictly, as a CSV set is: bytes that are not UTF-8 (a binary file given
        // by mistake) would otherwise become prompts of replacement characters.
        guard let text = String(data: data, encoding: .utf8), !text.contains("\0") else {
            throw PromptSetError("\(path): is not UTF-8 text")
        }
        let prompts = text.split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        guard !prompts.isEmpty else { throw PromptSetError("\(path): holds no prompts") }
        return prompts
    }

    /// Refuses a prompt that would not read back as itself (blank, holding a line break,
    /// or starting with `#`), naming `path`: an attack checks before it writes anything.
    public static func check(_ prompts: [String], for path: String) throws {
        if let bad = prompts.first(where: { !canHold($0) }) {
            throw PromptSetError(
                "\(path): cannot hold the prompt \(bad.debugDescription) (blank, a line break, or a leading #)"
            )
        }
    }

    /// Whether a text set reads `prompt` back as itself: not blank, no line break, no
    /// leading `#`.
    public static func canHold(_ prompt: String) -> Bool {
        let trimmed = prompt.trimmingCharacters(in: .whitespaces)
        return !trimmed.isEmpty && !trimmed.hasPrefix("#") && !prompt.contains(where: \.isNewline)
    }

    /// Writes `prompts` with a `#` header, atomically. A prompt that would not read back as
    /// itself (blank, holding a line break, or starting with `#`) is refused.
    public static func write(_ prompts: [String], header: String, to path: String) throws {
        try check(prompts, for: path)
        let text =
            header.split(separator: "\n").map { "# \($0)\n" }.joined()
            + prompts.map { $0 + "\n" }.joined()
        do { try AtomicFile.write(text, to: path) } catch {
            throw PromptSetError("\(path): cannot write (\(FileProblem.reason(error)))")
        }
    }
}

/// A prompt set that cannot be read or written, in one line naming the file.
public typealias PromptSetError = OneLineError
