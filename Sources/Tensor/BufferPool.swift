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

    private var cached: [Int: [UnsafeMutablePointer<Float>]] = [:]
    private var cachedBytes = 0
    private let lock = NSLock()

    func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        lock.lock()
        if let pointer = cached[count]?.popLast() {
            cachedBytes -= count * MemoryLayout<Float>.stride
            lock.unlock()
            return pointer
        }
        lock.unlock()
        return Self.fresh(bytes: max(count, 1) * MemoryLayout<Float>.stride)
            .bindMemory(to: Float.self, capacity: max(count, 1))
    }

    /// New memory: 64-byte aligned (whole cache lines, aligned AVX-512 loads), and for
    /// large buffers 2 MiB aligned and marked for transparent huge pages. Faulting in
    /// fresh 4 KiB pages dominated loading a 3.4 GB model here (the kernel clearing and
    /// accounting 860K pages); huge pages cut that 512-fold.
    private static func fresh(bytes: Int) -> UnsafeMutableRawPointer {
        let hugePage = 2 << 20
        let large = bytes >= 2 * hugePage
        var pointer: UnsafeMutableRawPointer?
        guard posix_memalign(&pointer, large ? hugePage : 64, bytes) == 0, let pointer else {
            fatalError("out of memory allocating \(bytes) bytes")
        }
        if large { madvise(pointer, bytes, Int32(MADV_HUGEPAGE)) }
        return pointer
    }

    func release(_ pointer: UnsafeMutablePointer<Float>, count: Int) {
        let bytes = count * MemoryLayout<Float>.stride
        lock.lock()
        if cachedBytes + bytes <= cacheLimitBytes {
            cached[count, default: []].append(pointer)
            cachedBytes += bytes
            lock.unlock()
        } else {
            lock.unlock()
            free(pointer)
        }
    }

    /// Frees every cached buffer (for example between phases with different shapes).
    public func trim() {
        lock.lock()
        let buffers = cached
        cached = [:]
        cachedBytes = 0
        lock.unlock()
        for pointers in buffers.values { pointers.forEach { free($0) } }
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

    /// Bumped by every write to memory that was already there (`assign`, `withUnsafe
    /// MutableBufferPointer`, the optimizers' in-place steps), so that `derived` knows when
    /// its values went stale.
    var generation = 0

    /// Values made from this memory and kept with it (frozen weights in another layout),
    /// valid for `derivedGeneration`.
    private var derivedValues: [String: AnyObject] = [:]
    private var derivedGeneration = 0
    private static let derivedLock = NSLock()

    /// The value kept under `key`, or `make()`'s, kept while the memory does not change.
    func derived<T: AnyObject>(_ key: String, make: () -> T?) -> T? {
        Storage.derivedLock.lock()
        if derivedGeneration != generation {
            derivedValues = [:]
            derivedGeneration = generation
        }
        let kept = derivedValues[key] as? T
        let seen = generation
        Storage.derivedLock.unlock()
        if let kept { return kept }
        guard let made = make() else { return nil }
        Storage.derivedLock.lock()
        if seen == generation { derivedValues[key] = made }
        Storage.derivedLock.unlock()
        return made
    }

    deinit { BufferPool.shared.release(pointer, count: count) }
}
