import Formats
import Foundation

/// An external detector speaking the line protocol: duo writes image paths to its stdin,
/// one per line; it answers one JSON object per image on stdout,
/// `{"path": P, "score": s}` with s in [0, 1] (or `"scores": {NAME: s}` with one entry,
/// as `duo world detect --concept NAME` prints). Answers may come in any order within a batch
/// of paths. The process is started once (`/bin/sh -c COMMAND`) and serves every batch;
/// its stderr goes to ours. It runs in a process group of its own, which duo ends as a
/// whole (the shell and whatever it started) when it is done with it or gives up on it.
public final class DetectorProcess: ConceptDetector {
    public let command: String
    /// Seconds to wait for each answer.
    public let timeout: Double
    private let child: ChildProcessGroup
    private var buffered: [UInt8] = []
    /// Paths written per round: few enough that neither pipe can fill while the other waits.
    private let chunk = 32

    public var identity: String { command }

    public init(command: String, timeout: Double) throws {
        self.command = command
        self.timeout = timeout
        // A detector that dies makes our next write fail with EPIPE instead of killing us.
        signal(SIGPIPE, SIG_IGN)
        do { child = try ChildProcessGroup(shellCommand: command) } catch {
            throw DetectorError("detector '\(command)' could not be started: \(error)")
        }
    }

    deinit { child.end() }

    public func scores(paths: [String]) throws -> [Double] {
        var result: [Double] = []
        for start in stride(from: 0, to: paths.count, by: chunk) {
            result += try round(Array(paths[start..<min(paths.count, start + chunk)]))
        }
        return result
    }

    /// Writes `paths` and reads one answer for each.
    private func round(_ paths: [String]) throws -> [Double] {
        if let bad = paths.first(where: { $0.contains("\n") }) {
            throw DetectorError(
                "image path \(jsonQuoted(bad)) holds a newline: the line protocol cannot send it")
        }
        let text = paths.map { $0 + "\n" }.joined()
        guard child.write(Array(text.utf8)) else { throw ended(waitingFor: paths[0]) }
        var scores: [String: Double] = [:]
        while scores.count < Set(paths).count {
            let waiting = paths.first { scores[$0] == nil }!
            let line = try readLine(waitingFor: waiting)
            let (path, score) = try parse(line, waitingFor: waiting)
            guard paths.contains(path) else {
                throw DetectorError(
                    "detector '\(command)' answered for \(jsonQuoted(path)), which it was not asked about (waiting for \(waiting))"
                )
            }
            scores[path] = score
        }
        return paths.map { scores[$0]! }
    }

    private func parse(_ line: String, waitingFor path: String) throws -> (String, Double) {
        let shown = line.count > 120 ? String(line.prefix(120)) + "..." : line
        let malformed = DetectorError(
            "detector '\(command)' printed a malformed line while \(path) was waiting: "
                + "\(jsonQuoted(shown)) (expected {\"path\": ..., \"score\": 0..1})")
        guard let value = try? JSONParser.parse(Array(line.utf8)),
            let answered = value["path"]?.string
        else { throw malformed }
        var score = value["score"]?.double
        if score == nil, let members = value["scores"]?.members, members.count == 1 {
            score = members[0].value.double
        }
        guard let score, (0...1).contains(score) else { throw malformed }
        return (answered, score)
    }

    /// The next line of stdout, waiting at most `timeout` seconds for it.
    private func readLine(waitingFor path: String) throws -> String {
        let fd = child.output
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let newline = buffered.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffered[..<newline], as: UTF8.self)
                buffered.removeSubrange(...newline)
                if line.trimmingCharacters(in: .whitespaces).isEmpty { continue }
                return line
            }
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else {
                child.end()
                throw DetectorError(
                    "detector '\(command)' gave no answer for \(path) within \(timeout) s (stopped it)"
                )
            }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32(min(left * 1000, 1000)))
            if ready == 0 || (ready < 0 && errno == EINTR) { continue }
            var bytes = [UInt8](repeating: 0, count: 65536)
            let count = read(fd, &bytes, bytes.count)
            if count <= 0 { throw ended(waitingFor: path) }
            buffered += bytes[..<count]
        }
    }

    private func ended(waitingFor path: String) -> DetectorError {
        DetectorError("detector '\(command)' \(child.waitForExit()) before answering for \(path)")
    }
}
