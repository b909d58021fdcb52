import Dispatch
import Foundation

/// Splits work over the machine's cores.
///
/// Every split is by index ranges whose results do not depend on how the ranges are cut,
/// so results are identical whatever the thread count.
public enum Parallel {
    /// Worker count; defaults to the active core count.
    nonisolated(unsafe) public static var threadCount = max(
        1, ProcessInfo.processInfo.activeProcessorCount)

    /// Calls `body` on disjoint subranges covering `0..<count`, in parallel when the work
    /// (`count * costPerItem`, roughly in floats touched) is large enough to pay for it.
    public static func forEach(
        _ count: Int, costPerItem: Int = 1, _ body: (Range<Int>) -> Void
    ) {
        let threads = min(threadCount, count)
        if threads <= 1 || count * costPerItem < 1 << 15 {
            if count > 0 { body(0..<count) }
            return
        }
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            let lower = count * t / threads
            let upper = count * (t + 1) / threads
            if lower < upper { body(lower..<upper) }
        }
    }
}
