/// Text outputs (manifests, configs, reports) written so that a reader, or a run that was
/// killed, never sees half a file.
public enum AtomicFile {
    /// Writes `text` as UTF-8 to a temporary file beside `path`, flushes it and renames it
    /// over `path`; on failure `path` is left as it was.
    public static func write(_ text: String, to path: String) throws {
        try writeAtomically(to: path) { try $0.write(Array(text.utf8)) }
    }
}
