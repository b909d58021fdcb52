#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

// POSIX file access for the formats: whole-file reads, read-only memory maps and atomic writes.
// POSIX rather than FileManager so every failure carries errno's reason and a one-line message.

/// The text of the current `errno`, e.g. "No such file or directory".
private func errnoReason() -> String {
    String(cString: strerror(errno))
}

/// Opens `path` read-only and returns its descriptor and size; rejects directories.
private func openForReading(_ path: String) throws -> (fd: Int32, size: Int) {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else {
        let kind: FormatError.Kind = errno == ENOENT ? .fileNotFound : .io
        let reason = kind == .fileNotFound ? "no such file" : "cannot open: \(errnoReason())"
        throw FormatError(kind, path: path, reason: reason)
    }
    var info = stat()
    guard fstat(fd, &info) == 0 else {
        let reason = errnoReason()
        close(fd)
        throw FormatError(.io, path: path, reason: "cannot stat: \(reason)")
    }
    if (info.st_mode & S_IFMT) == S_IFDIR {
        close(fd)
        throw FormatError(.io, path: path, reason: "is a directory, not a file")
    }
    return (fd, Int(info.st_size))
}

/// Reads a whole (small) file, such as a PNG, into memory.
func readWholeFile(_ path: String) throws -> [UInt8] {
    let (fd, size) = try openForReading(path)
    defer { close(fd) }
    var bytes = [UInt8](repeating: 0, count: size)
    var done = 0
    while done < size {
        let count = bytes.withUnsafeMutableBytes { buffer in
            read(fd, buffer.baseAddress! + done, size - done)
        }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else {
            let reason = count < 0 ? errnoReason() : "file shrank while reading"
            throw FormatError(.io, path: path, reason: "cannot read: \(reason)")
        }
        done += count
    }
    return bytes
}

/// The first `count` bytes of a file (fewer if the file is shorter), to recognize its type.
func readFilePrefix(_ path: String, count: Int) throws -> [UInt8] {
    let (fd, size) = try openForReading(path)
    defer { close(fd) }
    var bytes = [UInt8](repeating: 0, count: min(count, size))
    let done = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
    guard done >= 0 else {
        throw FormatError(.io, path: path, reason: "cannot read: \(errnoReason())")
    }
    return Array(bytes.prefix(done))
}

/// Reads bytes `range` of `path` with pread(2), `chunkBytes` at a time (the last chunk may
/// be shorter), handing each chunk and its offset within the range to `body`. For bulk
/// loading this beats touching a memory map: the kernel copies from its page cache at
/// memory speed instead of taking one page fault per 4 KiB.
func readRange(
    _ path: String, _ range: Range<Int>, chunkBytes: Int,
    _ body: (UnsafeRawBufferPointer, Int) throws -> Void
) throws {
    let (fd, _) = try openForReading(path)
    defer { close(fd) }
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkBytes, alignment: 64)
    defer { buffer.deallocate() }
    var done = 0
    while done < range.count {
        let wanted = min(chunkBytes, range.count - done)
        var filled = 0
        while filled < wanted {
            let count = pread(
                fd, buffer.baseAddress! + filled, wanted - filled,
                off_t(range.lowerBound + done + filled))
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else {
                let reason = count == 0 ? "file ended early" : errnoReason()
                throw FormatError(.io, path: path, reason: "cannot read: \(reason)")
            }
            filled += count
        }
        try body(UnsafeRawBufferPointer(rebasing: buffer[0..<wanted]), done)
        done += wanted
    }
}

/// A file mapped read-only into memory; pages are read on first touch, so opening a
/// multi-gigabyte checkpoint costs nothing until its tensors are used. Unmapped on deinit.
final class MappedFile: @unchecked Sendable {
    /// The path the file was opened by.
    let path: String
    /// The mapped bytes (empty for an empty file: a zero-length map is not allowed).
    let bytes: UnsafeRawBufferPointer

    init(path: String) throws {
        self.path = path
        let (fd, size) = try openForReading(path)
        defer { close(fd) }
        guard size > 0 else {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let address, address != UnsafeMutableRawPointer(bitPattern: -1) else {
            throw FormatError(.io, path: path, reason: "cannot memory-map: \(errnoReason())")
        }
        bytes = UnsafeRawBufferPointer(start: address, count: size)
    }

    deinit {
        if let base = bytes.baseAddress {
            munmap(UnsafeMutableRawPointer(mutating: base), bytes.count)
        }
    }
}

/// Sequential writes to an open file descriptor; handed to `writeAtomically`'s body.
struct FileSink {
    fileprivate let fd: Int32
    fileprivate let path: String

    /// Writes all of `bytes`, retrying short writes.
    func write(_ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let count = posixWrite(fd, bytes.baseAddress! + done, bytes.count - done)
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else {
                throw FormatError(.io, path: path, reason: "cannot write: \(errnoReason())")
            }
            done += count
        }
    }

    /// Writes all of `bytes`.
    func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }
}

/// `write(2)`, named apart from `FileSink.write` so the call inside it is unambiguous.
private func posixWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, buffer, count)
}

/// Writes a file so that readers see either the old file or the complete new one: the
/// bytes go to a temporary file in the same directory (so the final rename stays on one
/// file system and is atomic), are flushed to disk, then renamed over `path`. On any
/// failure the temporary file is removed and `path` is left as it was.
func writeAtomically(to path: String, _ body: (FileSink) throws -> Void) throws {
    let temporary = temporaryPath(besides: path)
    let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL, 0o644)
    guard fd >= 0 else {
        let reason = errno == ENOENT ? "directory does not exist" : errnoReason()
        throw FormatError(.io, path: path, reason: "cannot create: \(reason)")
    }
    var isOpen = true
    do {
        try body(FileSink(fd: fd, path: path))
        guard fsync(fd) == 0 else {
            throw FormatError(.io, path: path, reason: "cannot flush: \(errnoReason())")
        }
        isOpen = false  // close(2) releases the descriptor even when it reports an error
        guard close(fd) == 0 else {
            throw FormatError(.io, path: path, reason: "cannot close: \(errnoReason())")
        }
        guard rename(temporary, path) == 0 else {
            throw FormatError(.io, path: path, reason: "cannot replace: \(errnoReason())")
        }
    } catch {
        // Never close twice: the number may already belong to a file another thread opened.
        if isOpen { close(fd) }
        unlink(temporary)
        throw error
    }
}

/// `dir/.name.tmp-<pid>-<random>`: hidden, unique, and in the destination's directory.
private func temporaryPath(besides path: String) -> String {
    let slash = path.lastIndex(of: "/")
    let directory = slash.map { String(path[...$0]) } ?? ""
    let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
    let suffix = String(UInt64.random(in: 0...UInt64.max), radix: 36)
    return "\(directory).\(name).tmp-\(getpid())-\(suffix)"
}
