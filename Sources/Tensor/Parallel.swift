import Dispatch
import Foundation

/// Splits work over the machine's cores.
///
/// Every split is by index ranges whose results do not depend on how the ranges are cut,
/// unless a caller says otherwise, so results are identical whatever the thread count.
/// A `forEach` inside another runs inline on its worker: the outer split already keeps
/// every core busy.
public enum Parallel {
    /// Worker count; defaults to the active core count.
    nonisolated(unsafe) public static var threadCount = max(
        1, ProcessInfo.processInfo.activeProcessorCount)

    /// Marks the threads that are running a split's body.
    private static let workerKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    /// Calls `body` on disjoint subranges covering `0..<count`, in parallel when the work
    /// (`count * costPerItem`, roughly in floats touched) is large enough to pay for it.
    public static func forEach(
        _ count: Int, costPerItem: Int = 1, _ body: (Range<Int>) -> Void
    ) {
        forEachPart(count, costPerItem: costPerItem) { _, range in body(range) }
    }

    /// The number of parts `forEachPart` cuts `count` items into (1 when it runs inline).
    public static func partCount(_ count: Int, costPerItem: Int) -> Int {
        let threads = min(threadCount, count)
        let inline = threads <= 1 || count * costPerItem < 1 << 15
            || pthread_getspecific(workerKey) != nil
        return inline ? 1 : threads
    }

    /// `forEach` that also tells the body which part it runs, in `0..<partCount(...)`, so
    /// that each part can keep its own scratch memory or partial sums.
    public static func forEachPart(
        _ count: Int, costPerItem: Int = 1, _ body: (Int, Range<Int>) -> Void
    ) {
        let parts = partCount(count, costPerItem: costPerItem)
        if parts == 1 {
            if count > 0 { body(0, 0..<count) }
            return
        }
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            let lower = count * part / parts
            let upper = count * (part + 1) / parts
            pthread_setspecific(workerKey, UnsafeRawPointer(bitPattern: 1))
            defer { pthread_setspecific(workerKey, nil) }
            if lower < upper { body(part, lower..<upper) }
        }
    }
}
