@testable import Tensor
import XCTest

/// The tensor allocator's cache: released buffers come back for the same size without new
/// memory, live plus kept bytes stay within the budget by dropping the oldest first, and a
/// large buffer dropped for the budget gives its memory to the request that dropped it.
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

    #if os(Linux)
        func testARequestTakesOverTheMemoryOfALargeBufferDroppedForTheBudget() {
            let pool = BufferPool()
            let floats = 1 << 20  // 4 MiB: mapped on its own
            pool.memoryBudgetBytes = 8 << 20
            let first = pool.allocate(floats)
            for i in 0..<floats { first[i] = Float(i) }
            pool.release(first, count: floats)
            // 6 MiB live and 4 MiB kept are over the budget: the kept buffer is dropped and
            // grown into the request, its values still there (pages kept, not new ones).
            var fresh = pool.freshBytes
            let grown = pool.allocate(floats * 3 / 2)
            XCTAssertEqual(pool.freshBytes - fresh, 2 << 20, "only the growth is new memory")
            XCTAssertTrue((0..<floats).allSatisfy { grown[$0] == Float($0) })
            for i in floats..<(floats * 3 / 2) { grown[i] = Float(i) }
            pool.release(grown, count: floats * 3 / 2)
            // Smaller: the dropped buffer shrinks in place.
            fresh = pool.freshBytes
            let shrunk = pool.allocate(floats * 5 / 4)
            XCTAssertEqual(pool.freshBytes, fresh)
            XCTAssertEqual(shrunk, grown)
            XCTAssertTrue((0..<(floats * 5 / 4)).allSatisfy { shrunk[$0] == Float($0) })
            XCTAssertEqual(pool.keptBytes, 0)
            pool.release(shrunk, count: floats * 5 / 4)
            pool.trim()
        }
    #endif

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
