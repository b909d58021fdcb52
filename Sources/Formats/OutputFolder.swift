#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Foundation

/// The folders a run writes into: made with a one-line error, and held by one writer at a
/// time.
public enum OutputFolder {
    /// The lock file's name: duo's own, so that a user's `.lock` is never truncated or
    /// removed.
    static let lockName = ".duo-lock"

    /// Makes `path` and its parents; `what` says in the error whose folder it is
    /// ("--out", "the pairs folder"). Returns whether it made the folder.
    @discardableResult
    public static func create(_ path: String, for what: String) throws -> Bool {
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) {
            guard isFolder.boolValue else {
                throw OneLineError("\(what) \(path): is a file, not a folder")
            }
            return false
        }
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw OneLineError(
                "\(path): cannot create the output folder (\(FileProblem.reason(error)))")
        }
        return true
    }

    /// Removes folder `path` if it holds nothing but its lock file: what a run that made it
    /// and then failed before writing anything leaves.
    public static func removeIfUnused(_ path: String) {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: path),
            entries.allSatisfy({ $0 == lockName })
        else { return }
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Takes `path`'s writer lock (an advisory `flock` on `path/.duo-lock`, which holds the
    /// writer's PID) until the returned lock is released or the process ends, however it
    /// ends. A second writer gets a one-line error naming the holder.
    public static func lock(_ path: String, for what: String) throws -> FolderLock {
        let lockPath = path + "/" + lockName
        while true {
            let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                throw OneLineError(
                    "\(what) \(path): cannot open its lock file (\(String(cString: strerror(errno))))"
                )
            }
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
                let holder = readHolder(fd)
                close(fd)
                throw OneLineError(
                    "\(what) \(path): another duo is writing it (PID \(holder.isEmpty ? "unknown" : holder)); "
                        + "wait for it to finish or give another folder")
            }
            // The holder before us unlinks the file as it lets go: a lock taken on that
            // unlinked file is no lock, so take it again on the file the path names now.
            var held = stat(), named = stat()
            guard fstat(fd, &held) == 0, stat(lockPath, &named) == 0, held.st_ino == named.st_ino,
                held.st_dev == named.st_dev
            else {
                close(fd)
                continue
            }
            let pid = Array("\(getpid())\n".utf8)
            _ = ftruncate(fd, 0)
            _ = pwrite(fd, pid, pid.count, 0)
            return FolderLock(fd: fd, path: lockPath)
        }
    }

    private static func readHolder(_ fd: Int32) -> String {
        var bytes = [UInt8](repeating: 0, count: 32)
        let count = pread(fd, &bytes, bytes.count, 0)
        return String(decoding: bytes.prefix(max(0, count)), as: UTF8.self).trimmingCharacters(
            in: .whitespacesAndNewlines)
    }
}

/// A held writer lock (`OutputFolder.lock`); `release()` removes the lock file and lets
/// go, and the end of the process lets go however it ends (a killed run's lock file
/// stays, free to be taken).
public final class FolderLock {
    private var fd: Int32
    private let path: String

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    public func release() {
        guard fd >= 0 else { return }
        unlink(path)
        close(fd)
        fd = -1
    }

    deinit { release() }
}
