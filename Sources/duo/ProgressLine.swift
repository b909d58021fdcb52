import Foundation

/// Progress of a long run on stderr: one line redrawn in place (steps, rate, ETA) on a
/// terminal, plain lines otherwise (logs, CI).
final class ProgressLine {
    private let label: String
    private let start = Date()
    private let isTerminal = isatty(STDERR_FILENO) != 0
    private var lastPlain = Date.distantPast
    /// Work done before this run started (a resumed training run's steps): not in the rate.
    private var startCount = 0

    init(_ label: String) { self.label = label }

    /// Counts the rate from `done` (a resumed run's first step is `done` + 1), so that the
    /// rate and ETA are this run's.
    func startCounting(from done: Int) { startCount = done }

    func update(_ done: Int, of total: Int, detail: String = "") {
        let elapsed = Date().timeIntervalSince(start)
        let rate = Double(done - startCount) / max(elapsed, 1e-9)
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let text =
            String(format: "%@ %d/%d  %.2f/s  ETA %@", label, done, total, rate, Self.clock(eta))
            + (detail.isEmpty ? "" : "  " + detail)
        if isTerminal {
            FileHandle.standardError.write(
                Data(("\r\u{1B}[K" + text + (done == total ? "\n" : "")).utf8))
        } else if done == total || Date().timeIntervalSince(lastPlain) >= 5 {
            // At most a line every 5 s, and the last one.
            lastPlain = Date()
            FileHandle.standardError.write(Data((text + "\n").utf8))
        }
    }

    /// A line of its own (above the progress line on a terminal).
    func note(_ text: String) {
        FileHandle.standardError.write(Data(((isTerminal ? "\r\u{1B}[K" : "") + text + "\n").utf8))
    }

    private static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600
            ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
            : String(format: "%d:%02d", s / 60, s % 60)
    }
}
