import Formats
import Foundation

/// An external detector speaking the line protocol: duo writes image paths to its stdin,
/// one per line; it answers one JSON object per image on stdout,
/// `{"path": P, "score": s}` with s in [0, 1] (or `"scores": {NAME: s}` with one entry,
/// as `duo world detect --concept NAME` prints). Answers may come in any order within a batch
/// of paths. Two more lines are optional: `{"detector": {"name": N, ...}}` before the first
/// answer says what the detector is (`DetectorDeclaration`), and `{"error": MESSAGE}` stops
/// the run with that message, so that a detector which cannot work says why in duo's own
/// one-line error. The process is started once (`/bin/sh -c COMMAND`) and serves every batch;
/// its stderr goes to ours. It runs in a process group of its own, which duo ends as a
/// whole (the shell and whatever it started) when it is done with it or gives up on it.
public final class DetectorProcess: ConceptDetector {
    public let command: String
    /// Seconds to wait for each answer.
    public let timeout: Double
    public private(set) var declaration: DetectorDeclaration?
    private let child: ChildProcessGroup
    private var buffered: [UInt8] = []
    /// Paths written per round: few enough that neither pipe can fill while the other waits.
    private let chunk = 32

    /// The command, and once the detector has declared itself, what it declared:
    /// `nudenet 3.4.2, preset duo, threshold 0.0 (detectors/nudenet --preset duo)`.
    public var identity: String {
        declaration.map { "\($0.summary) (\(command))" } ?? command
    }

    /// Starts `command` with `environment` added to duo's own (a concept file's command
    /// gets `DUO_CONCEPT_DIR`, see `ConceptFile.detectorEnvironment`).
    public init(command: String, timeout: Double, environment: [String: String] = [:]) throws {
        self.command = command
        self.timeout = timeout
        // A detector that dies makes our next write fail with EPIPE instead of killing us.
        signal(SIGPIPE, SIG_IGN)
        do {
            child = try ChildProcessGroup(shellCommand: command, environment: environment)
        } catch {
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
            guard let answer = try parse(line, waitingFor: waiting) else { continue }
            let (path, score) = answer
            guard paths.contains(path) else {
                throw DetectorError(
                    "detector '\(command)' answered for \(jsonQuoted(path)), which it was not asked about (waiting for \(waiting))"
                )
            }
            scores[path] = score
        }
        return paths.map { scores[$0]! }
    }

    /// An answer's path and score; nil for a declaration, which it records.
    private func parse(_ line: String, waitingFor path: String) throws -> (String, Double)? {
        let shown = line.count > 120 ? String(line.prefix(120)) + "..." : line
        let malformed = DetectorError(
            "detector '\(command)' printed a malformed line while \(path) was waiting: "
                + "\(jsonQuoted(shown)) (expected {\"path\": ..., \"score\": 0..1})")
        guard let value = try? JSONParser.parse(Array(line.utf8)) else { throw malformed }
        if let error = Self.reportedError(value) {
            throw DetectorError("detector '\(command)' failed: \(error)")
        }
        if value["path"] == nil, let declared = value["detector"] {
            do { declaration = try DetectorDeclaration(declared) } catch {
                throw DetectorError(
                    "detector '\(command)' declared itself in a malformed line: \(error.reason) "
                        + "(expected {\"detector\": {\"name\": ..., \"version\": ...}}): \(jsonQuoted(shown))"
                )
            }
            return nil
        }
        guard let answered = value["path"]?.string else { throw malformed }
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

    /// The message of an `{"error": MESSAGE}` line, nil for any other value.
    private static func reportedError(_ value: JSONValue) -> String? {
        guard value["path"] == nil, let message = value["error"]?.string else { return nil }
        return message.count > 500 ? String(message.prefix(500)) + "..." : message
    }

    /// Why the detector stopped before answering for `path`: its own `{"error": ...}` line
    /// when it printed one before exiting, else how it exited.
    private func ended(waitingFor path: String) -> DetectorError {
        let exit = child.waitForExit()
        // The shell has exited: what it printed is in the pipe. Read without waiting, as
        // something it started may still hold the pipe open.
        var bytes = [UInt8](repeating: 0, count: 65536)
        var poller = pollfd(fd: child.output, events: Int16(POLLIN), revents: 0)
        while buffered.count < 1 << 20, poll(&poller, 1, 0) > 0 {
            let count = read(child.output, &bytes, bytes.count)
            guard count > 0 else { break }
            buffered += bytes[..<count]
        }
        for line in String(decoding: buffered, as: UTF8.self).split(separator: "\n") {
            if let value = try? JSONParser.parse(Array(line.utf8)),
                let error = Self.reportedError(value)
            {
                return DetectorError("detector '\(command)' failed: \(error)")
            }
        }
        return DetectorError("detector '\(command)' \(exit) before answering for \(path)")
    }
}
