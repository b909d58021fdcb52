import Foundation

/// Ctrl-C as a request to stop cleanly: long runs poll `Interruption.requested` between
/// steps, checkpoint and exit; a second Ctrl-C ends the process at once.
enum Interruption {
    nonisolated(unsafe) static var requested = false

    static func install() {
        signal(SIGINT) { _ in
            if Interruption.requested { _exit(130) }
            Interruption.requested = true
        }
    }
}
