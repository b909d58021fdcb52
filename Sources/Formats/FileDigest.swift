import Foundation

#if canImport(CommonCrypto)
    import CommonCrypto
#else
    import CLibCrypto
#endif

/// SHA-256 digests of files, the identity manifests and configs record for a model's
/// weights (the same hex string `sha256sum` prints).
public enum FileDigest {
    /// The lowercase hex SHA-256 of the file at `path`, read in 4 MiB chunks.
    public static func sha256(ofFile path: String) throws -> String {
        let hasher = SHA256Hasher()
        try update(hasher, withFile: path)
        return hex(hasher.finalize())
    }

    /// One SHA-256 over the files in order, each preceded by its name and size so that
    /// moving bytes between files changes the digest.
    public static func sha256(ofFiles paths: [String], names: [String]) throws -> String {
        precondition(paths.count == names.count, "one name per file")
        let hasher = SHA256Hasher()
        for (path, name) in zip(paths, names) {
            let size = try fileSize(path)
            hasher.update(Array("\(name)\n\(size)\n".utf8))
            try update(hasher, withFile: path)
        }
        return hex(hasher.finalize())
    }

    /// The lowercase hex SHA-256 of `text`'s UTF-8 bytes.
    public static func sha256(ofText text: String) -> String {
        let hasher = SHA256Hasher()
        hasher.update(Array(text.utf8))
        return hex(hasher.finalize())
    }

    private static func update(_ hasher: SHA256Hasher, withFile path: String) throws {
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
            chunk.withUnsafeBytes { hasher.update($0) }
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

/// One SHA-256 computation: the system's implementation (OpenSSL's libcrypto on Linux,
/// CommonCrypto on macOS), which uses the CPU's SHA extensions where it has them.
final class SHA256Hasher {
    #if canImport(CommonCrypto)
        private var context = CC_SHA256_CTX()
        init() { CC_SHA256_Init(&context) }
    #else
        private let context: OpaquePointer  // EVP_MD_CTX, opaque
        init() {
            // Fails only when libcrypto cannot allocate or has no SHA-256 (a broken install).
            guard let context = EVP_MD_CTX_new() else { fatalError("libcrypto: out of memory") }
            precondition(
                EVP_DigestInit_ex(context, EVP_sha256(), nil) == 1, "libcrypto offers no SHA-256")
            self.context = context
        }
        deinit { EVP_MD_CTX_free(context) }
    #endif

    func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        #if canImport(CommonCrypto)
            CC_SHA256_Update(&context, base, CC_LONG(bytes.count))
        #else
            precondition(EVP_DigestUpdate(context, base, bytes.count) == 1, "SHA-256 update failed")
        #endif
    }

    func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The 32-byte digest; call once.
    func finalize() -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: 32)
        #if canImport(CommonCrypto)
            CC_SHA256_Final(&digest, &context)
        #else
            var length: UInt32 = 0
            precondition(EVP_DigestFinal_ex(context, &digest, &length) == 1 && length == 32)
        #endif
        return digest
    }
}
