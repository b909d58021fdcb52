import Foundation

/// The value of `body` computed on a new thread (not a dispatch queue, which may run a
/// synchronous block on the calling thread): for checking per-thread state.
public func onAnotherThread<T>(_ body: @escaping () -> T) -> T {
    let box = ResultBox<T>()
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
        box.value = body()
        done.signal()
    }
    thread.start()
    done.wait()
    return box.value!
}

private final class ResultBox<T>: @unchecked Sendable {
    var value: T?
}
