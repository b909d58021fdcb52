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

    func testAContainersMemoryLimitBoundsTheBudget() throws {
        let folder = FileManager.default.temporaryDirectory
            .appendingPathComponent("duo-buffer-pool-\(getpid())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let (unlimited, limited) = (
            folder.appendingPathComponent("v2"), folder.appendingPathComponent("v1")
        )
        try "max\n".write(to: unlimited, atomically: true, encoding: .utf8)
        try "1073741824\n".write(to: limited, atomically: true, encoding: .utf8)
        let physical = Int(clamping: ProcessInfo.processInfo.physicalMemory)
        XCTAssertEqual(BufferPool.usableMemoryBytes(limitFiles: [unlimited.path]), physical)
        XCTAssertEqual(
            BufferPool.usableMemoryBytes(limitFiles: [unlimited.path, limited.path]),
            min(physical, 1 << 30))
        XCTAssertEqual(BufferPool.usableMemoryBytes(limitFiles: [folder.path + "/none"]), physical)
    }
}
