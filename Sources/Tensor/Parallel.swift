import Dispatch
import Foundation

/// Splits work over the machine's cores.
///
/// Every split is by index ranges whose results do not depend on how the ranges are cut,
/// unless a caller says otherwise, so results are identical whatever the thread count.
/// A `forEach` inside another shares out only its worker's part of the threads (inline on
/// two cores): the outer split already keeps those cores busy.
public enum Parallel {
    /// Worker count; defaults to the active core count.
    nonisolated(unsafe) public static var threadCount = max(
        1, ProcessInfo.processInfo.activeProcessorCount)

    /// On a thread running a split's body: 1 + the threads a split nested in it may use.
    private static let nestedThreads = ThreadLocalInt()

    /// The threads a split started on this thread may use.
    static var availableThreads: Int {
        let nested = nestedThreads.value
        return nested == 0 ? threadCount : nested - 1
    }

    /// Calls `body` on disjoint subranges covering `0..<count`, in parallel when the work
    /// (`count * costPerItem`, roughly in floats touched) is large enough to pay for it.
    public static func forEach(
        _ count: Int, costPerItem: Int = 1, _ body: (Range<Int>) -> Void
    ) {
        forEachPart(count, costPerItem: costPerItem) { _, range in body(range) }
    }

    /// The least work (`count * costPerItem`) a split is made for. Smaller work runs inline:
    /// a worker parked between two splits takes tens of microseconds to wake, and an op's
    /// output split over two cores' caches is read back by the next op from the other core's.
    /// On two cores a batch-1 UNet pass (ESD's trained prediction and its backward) ran
    /// slower split at every op than on one thread; this bound was measured on whole runs
    /// (BENCHMARKS.md, "Parallel splits").
    public static let minimumWork = 1 << 20

    /// The number of parts `forEachPart` cuts `count` items into (1 when it runs inline).
    public static func partCount(_ count: Int, costPerItem: Int) -> Int {
        let threads = min(availableThreads, count)
        let inline = threads <= 1 || count * costPerItem < minimumWork
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
        let threadsEach = max(1, availableThreads / parts)
        let inherited = ThreadLocalInt.inheritedValues()
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            let lower = count * part / parts
            let upper = count * (part + 1) / parts
            ThreadLocalInt.with(inherited) {
                nestedThreads.with(threadsEach + 1) {
                    if lower < upper { body(part, lower..<upper) }
                }
            }
        }
    }
}
