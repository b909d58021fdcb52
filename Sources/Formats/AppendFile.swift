import Foundation

/// Logs and manifests that grow a record at a time (train.jsonl, manifest.jsonl).
public enum AppendFile {
    /// Appends `text` to `path` (created if missing) with one write; `flush` forces it to
    /// disk before returning, for records a resumed run relies on.
    public static func append(_ text: String, to path: String, flush: Bool = false) throws {
        if !FileManager.default.fileExists(atPath: path) {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
        }
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw FormatError(.io, path: path, reason: "cannot open for appending")
        }
        defer { try? handle.close() }
        do {
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(text.utf8))
            if flush { try handle.synchronize() }
        } catch {
            throw FormatError(
                .io, path: path, reason: "cannot append: \(FileProblem.reason(error))")
        }
    }
}
