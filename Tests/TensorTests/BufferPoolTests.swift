@testable import Tensor
import XCTest

/// The tensor allocator's cache: released buffers come back for the same size without new
/// memory, live plus kept bytes stay within the budget by dropping the oldest first, and a
/// large buffer dropped for the budget gives its pages to the large requests that follow.
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
        func testARequestTakesOverThePagesOfALargeBufferDroppedForTheBudget() {
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
            // The same bytes: the dropped buffer, now of two mappings, serves it whole.
            fresh = pool.freshBytes
            let again = pool.allocate(floats * 5 / 4)
            XCTAssertEqual(pool.freshBytes, fresh)
            XCTAssertEqual(again, grown)
            XCTAssertTrue((0..<(floats * 5 / 4)).allSatisfy { again[$0] == Float($0) })
            XCTAssertEqual(pool.keptBytes, 0)
            pool.release(again, count: floats * 5 / 4)
            pool.trim()
        }

        func testALargeRequestIsMadeOfThePagesOfSeveralDroppedBuffersAndLeavesTheRestReserved() {
            let pool = BufferPool()
            let floats = 1 << 20  // 4 MiB: mapped on its own
            let mebibyte = 1 << 18  // floats
            pool.memoryBudgetBytes = 12 << 20
            let (a, b) = (pool.allocate(floats), pool.allocate(floats))
            for i in 0..<floats { (a[i], b[i]) = (Float(i), -Float(i)) }
            pool.release(a, count: floats)
            pool.release(b, count: floats)
            // 10 MiB live and 8 MiB kept are over the budget: a, then b are dropped, and
            // their pages, moved side by side in that order, make the request's first 8 MiB.
            var fresh = pool.freshBytes
            let joined = pool.allocate(10 * mebibyte)
            XCTAssertEqual(pool.freshBytes - fresh, 2 << 20, "only what a and b lack is new")
            XCTAssertTrue((0..<floats).allSatisfy { joined[$0] == Float($0) })
            XCTAssertTrue((0..<floats).allSatisfy { joined[floats + $0] == -Float($0) })
            pool.release(joined, count: 10 * mebibyte)
            // 5 MiB (6 mapped) and 10 MiB kept: the joined buffer is dropped; its first
            // 6 MiB serve the request where they are, the other 4 MiB stay reserved.
            fresh = pool.freshBytes
            let head = pool.allocate(5 * mebibyte)
            XCTAssertEqual(head, joined)
            XCTAssertEqual(pool.keptBytes, 4 << 20)
            // The next large request is served from the reserved pages: part of b's.
            let tail = pool.allocate(floats)
            XCTAssertEqual(pool.freshBytes, fresh)
            XCTAssertEqual(tail, joined + 6 * mebibyte)
            XCTAssertTrue((0..<(2 * mebibyte)).allSatisfy { tail[$0] == -Float(2 * mebibyte + $0) })
            XCTAssertEqual(pool.keptBytes, 0)
            pool.release(head, count: 5 * mebibyte)
            pool.release(tail, count: floats)
            pool.trim()
            XCTAssertEqual(pool.keptBytes, 0)
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
