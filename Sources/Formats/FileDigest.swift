import Crypto
import Foundation

/// SHA-256 digests of files, the identity manifests and configs record for a model's
/// weights (the same hex string `sha256sum` prints).
public enum FileDigest {
    /// The lowercase hex SHA-256 of the file at `path`, read in 4 MiB chunks.
    public static func sha256(ofFile path: String) throws -> String {
        var hasher = SHA256()
        try update(&hasher, withFile: path)
        return hex(hasher.finalize())
    }

    /// One SHA-256 over the files in order, each preceded by its name and size so that
    /// moving bytes between files changes the digest.
    public static func sha256(ofFiles paths: [String], names: [String]) throws -> String {
        precondition(paths.count == names.count, "one name per file")
        var hasher = SHA256()
        for (path, name) in zip(paths, names) {
            let size = try fileSize(path)
            hasher.update(data: Array("\(name)\n\(size)\n".utf8))
            try update(&hasher, withFile: path)
        }
        return hex(hasher.finalize())
    }

    /// The lowercase hex SHA-256 of `text`'s UTF-8 bytes.
    public static func sha256(ofText text: String) -> String {
        hex(SHA256.hash(data: Array(text.utf8)))
    }

    private static func update(_ hasher: inout SHA256, withFile path: String) throws {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw FormatError(.io, path: path, reason: "cannot open for reading")
        }
        defer { try? handle.close() }
        while true {
            let chunk: Data?
            do { chunk = try handle.read(upToCount: 4 << 20) } catch {
                throw FormatError(
                    .io, path: path, reason: "cannot read: \(FileProblem.reason(error))")
            }
            guard let chunk, !chunk.isEmpty else { return }
            hasher.update(data: chunk)
        }
    }

    private static func fileSize(_ path: String) throws -> UInt64 {
        let attributes = try? FileManager.default.attributesOfItem(atPath: path)
        guard let size = attributes?[.size] as? NSNumber else {
            throw FormatError(.io, path: path, reason: "cannot read the file's size")
        }
        return size.uint64Value
    }

    private static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        digest.map { String(format: "%02x", $0) }.joined()
    }
}
