#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Foundation

/// A shell command started in a process group of its own, with pipes to its stdin and
/// from its stdout (stderr is shared with ours) and our environment plus any variables given. Ending it ends the whole group, so a
/// detector script's children cannot outlive duo; a SIGTERM, SIGHUP or (where nothing
/// else handles it) SIGINT to duo ends the groups still running before duo exits.
final class ChildProcessGroup {
    let pid: pid_t
    /// Our ends of the pipes: we write the child's stdin and read its stdout.
    let input: Int32
    let output: Int32
    private var exitStatus: Int32?
    private var ended = false

    init(shellCommand: String, environment: [String: String] = [:]) throws {
        var toChild: [Int32] = [-1, -1]
        var fromChild: [Int32] = [-1, -1]
        guard pipe(&toChild) == 0, pipe(&fromChild) == 0 else { throw ChildError(errno: errno) }
        for fd in [toChild[1], fromChild[0]] { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, toChild[0], 0)
        posix_spawn_file_actions_adddup2(&actions, fromChild[1], 1)
        posix_spawn_file_actions_addclose(&actions, toChild[0])
        posix_spawn_file_actions_addclose(&actions, fromChild[1])
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
        posix_spawnattr_setpgroup(&attributes, 0)
        let words: [String] = ["/bin/sh", "-c", shellCommand]
        let arguments: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        defer { arguments.forEach { free($0) } }
        let variables: [UnsafeMutablePointer<CChar>?] =
            Self.environment(adding: environment).map { strdup($0) } + [nil]
        defer { variables.forEach { free($0) } }
        var child: pid_t = 0
        let status = posix_spawn(&child, "/bin/sh", &actions, &attributes, arguments, variables)
        close(toChild[0])
        close(fromChild[1])
        guard status == 0 else {
            close(toChild[1])
            close(fromChild[0])
            throw ChildError(errno: status)
        }
        pid = child
        input = toChild[1]
        output = fromChild[0]
        ChildGroups.register(child)
    }

    /// Our environment as NAME=VALUE entries, with `added` in place of any of the same name.
    private static func environment(adding added: [String: String]) -> [String] {
        var entries: [String] = []
        var cursor = environ
        while let entry = cursor.pointee {
            let text = String(cString: entry)
            let name = text.split(separator: "=", maxSplits: 1).first.map(String.init) ?? text
            if added[name] == nil { entries.append(text) }
            cursor += 1
        }
        return entries + added.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
    }

    /// Writes all of `bytes` to the child's stdin; false when the child has gone.
    func write(_ bytes: [UInt8]) -> Bool {
        var done = 0
        while done < bytes.count {
            let count = bytes.withUnsafeBytes {
                Glibc.write(input, $0.baseAddress! + done, bytes.count - done)
            }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return false }
            done += count
        }
        return true
    }

    /// Waits for the shell to exit and says how it did ("exited with status 3").
    func waitForExit() -> String {
        let status = reap(blocking: true) ?? 0
        let signal = status & 0x7f
        return signal == 0
            ? "exited with status \((status >> 8) & 0xff)" : "was killed by signal \(signal)"
    }

    /// Closes its stdin (a detector's cue to finish), then ends the group: SIGTERM, and
    /// SIGKILL to whatever is left a second later.
    func end() {
        // Once: a second close could hit a descriptor number reused since.
        guard !ended else { return }
        ended = true
        close(input)
        close(output)
        if exitStatus == nil {
            kill(-pid, SIGTERM)
            for _ in 0..<100 where reap(blocking: false) == nil { usleep(10_000) }
            kill(-pid, SIGKILL)
            _ = reap(blocking: true)
        } else {
            kill(-pid, SIGKILL)
        }
        ChildGroups.unregister(pid)
    }

    private func reap(blocking: Bool) -> Int32? {
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        while true {
            let result = waitpid(pid, &status, blocking ? 0 : WNOHANG)
            if result == pid { exitStatus = status; return status }
            if result < 0 && errno == EINTR { continue }
            return result < 0 ? 0 : nil
        }
    }
}

struct ChildError: Error, CustomStringConvertible {
    let errno: Int32
    var description: String { String(cString: strerror(errno)) }
}

/// The process groups duo has started and not yet ended, so a signal that ends duo ends
/// them too.
enum ChildGroups {
    nonisolated(unsafe) private static var running: [pid_t] = []
    nonisolated(unsafe) private static var installed = false
    private static let lock = NSLock()

    static func register(_ pid: pid_t) {
        lock.lock()
        defer { lock.unlock() }
        running.append(pid)
        guard !installed else { return }
        installed = true
        var signals = [SIGTERM, SIGHUP]
        var current = sigaction()
        if sigaction(SIGINT, nil, &current) == 0, current.__sigaction_handler.sa_handler == nil {
            signals.append(SIGINT)  // SIG_DFL: nothing of duo's handles Ctrl-C here
        }
        for number in signals {
            signal(number) { received in
                for pid in ChildGroups.running { kill(-pid, SIGKILL) }
                signal(received, SIG_DFL)
                raise(received)
            }
        }
    }

    static func unregister(_ pid: pid_t) {
        lock.lock()
        defer { lock.unlock() }
        running.removeAll { $0 == pid }
    }
}
