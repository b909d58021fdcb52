@testable import Tensor
import XCTest

/// The tensor allocator's cache: released buffers come back for the same size without new
/// memory, and live plus kept bytes stay within the budget by dropping the oldest first.
final class BufferPoolTests: XCTestCase {
    let floats = 1 << 10  // 4 KiB buffers

    func testAReleasedBufferIsHandedOutAgainForTheSameSize() {
        let pool = BufferPool()
        let first = pool.allocate(floats)
        pool.release(first, count: floats)
        let fresh = pool.freshBytes
        let again = pool.allocate(floats)
        XCTAssertEqual(again, first)
        XCTAssertEqual(pool.freshBytes, fresh, "no new memory for a size the cache holds")
        pool.release(again, count: floats)
        pool.trim()
        XCTAssertEqual(pool.keptBytes, 0)
    }

    func testNewMemoryDropsTheLongestKeptBuffersToStayWithinTheBudget() {
        let pool = BufferPool()
        let bytes = floats * 4
        pool.memoryBudgetBytes = 3 * bytes
        let (a, b) = (pool.allocate(floats), pool.allocate(floats))
        pool.release(a, count: floats)
        pool.release(b, count: floats)
        XCTAssertEqual(pool.keptBytes, 2 * bytes)
        // Two live buffers of another size need room: a, released first, goes; b stays.
        let c = pool.allocate(floats * 2 - 1)
        XCTAssertLessThanOrEqual(pool.keptBytes + (2 * floats - 1) * 4, 3 * bytes)
        XCTAssertEqual(pool.keptBytes, bytes)
        XCTAssertEqual(pool.allocate(floats), b, "the later release was kept")
        pool.release(c, count: floats * 2 - 1)
        pool.release(b, count: floats)
        pool.trim()
    }
}
