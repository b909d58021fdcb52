/// Path arithmetic on plain strings. Foundation's `NSString.deletingLastPathComponent`
/// traps on Linux when the last component is one character (`x`, `dir/x/`, `.`), and
/// user paths are anything.
public enum PathText {
    /// `path` without trailing slashes ("out/" is the folder "out"; "/" stays "/").
    public static func withoutTrailingSlash(_ path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        return String(trimmed)
    }

    /// The folder part of `path`: "" for a bare name, "/" for a name at the root.
    public static func parent(_ path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "" }
        var folder = trimmed[..<slash]
        while folder.count > 1, folder.hasSuffix("/") { folder = folder.dropLast() }
        return folder.isEmpty ? "/" : String(folder)
    }
}
