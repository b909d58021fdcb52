import Foundation

/// A caching allocator for tensor memory.
///
/// Training allocates the same activation and gradient sizes every step. Writing into
/// freshly mapped pages runs at a fraction of memory speed (page faults), so released
/// buffers are kept by exact size and handed out again.
public final class BufferPool: @unchecked Sendable {
    public static let shared = BufferPool()

    /// Bytes of released buffers kept for reuse before further releases are freed.
    public var cacheLimitBytes = 4 << 30

    private var free: [Int: [UnsafeMutablePointer<Float>]] = [:]
    private var cachedBytes = 0
    private let lock = NSLock()

    func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        lock.lock()
        if let pointer = free[count]?.popLast() {
            cachedBytes -= count * MemoryLayout<Float>.stride
            lock.unlock()
            return pointer
        }
        lock.unlock()
        // 64-byte alignment: whole cache lines, aligned AVX-512 loads.
        let raw = UnsafeMutableRawPointer.allocate(
            byteCount: max(count, 1) * MemoryLayout<Float>.stride, alignment: 64)
        return raw.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    func release(_ pointer: UnsafeMutablePointer<Float>, count: Int) {
        let bytes = count * MemoryLayout<Float>.stride
        lock.lock()
        if cachedBytes + bytes <= cacheLimitBytes {
            free[count, default: []].append(pointer)
            cachedBytes += bytes
            lock.unlock()
        } else {
            lock.unlock()
            pointer.deallocate()
        }
    }

    /// Frees every cached buffer (for example between phases with different shapes).
    public func trim() {
        lock.lock()
        let buffers = free
        free = [:]
        cachedBytes = 0
        lock.unlock()
        for pointers in buffers.values { pointers.forEach { $0.deallocate() } }
    }
}

/// Contiguous Float32 memory shared by a tensor and its detached views.
public final class Storage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int

    /// Uninitialized memory from the pool: callers must write every element.
    init(uninitializedCount count: Int) {
        self.count = count
        self.pointer = BufferPool.shared.allocate(count)
    }

    deinit { BufferPool.shared.release(pointer, count: count) }
}
