import Foundation
import Tensor
import XCTest

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

/// `body`'s values on the worker threads of a two-way `DataParallel.map` started here
/// (the shards that ran on the calling thread left out): for checking what a split's
/// workers inherit. Skips the test if the split happened to run all on this thread.
public func valuesOnSplitWorkers<T>(_ body: () -> T) throws -> [T] {
    let saved = Parallel.threadCount
    defer { Parallel.threadCount = saved }
    Parallel.threadCount = 2
    let caller = pthread_self()
    // Each shard waits (up to a second) for the other to start, so that the calling
    // thread does not run both before a worker wakes.
    let started = StartCount()
    let results = DataParallel.map(shards: 2) { _ in
        started.arriveAndWait(for: 2, seconds: 1)
        return (pthread_equal(pthread_self(), caller) != 0, body())
    }
    let elsewhere = results.filter { !$0.0 }.map(\.1)
    if elsewhere.isEmpty { throw XCTSkip("both shards ran on the calling thread") }
    return elsewhere
}

private final class StartCount: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0

    func arriveAndWait(for total: Int, seconds: Double) {
        lock.withLock { count += 1 }
        let deadline = Date().addingTimeInterval(seconds)
        while lock.withLock({ count }) < total && Date() < deadline { usleep(500) }
    }
}
