import CKernels
import Foundation

/// A caching allocator for tensor memory.
///
/// Training allocates the same activation and gradient sizes every step. Writing into
/// freshly mapped pages runs at a fraction of memory speed (the kernel faults and clears
/// each page), so released buffers are kept by exact size and handed out again. A step
/// with activation checkpointing releases and asks again for far more than it holds at
/// once, so what bounds the cache is the memory in use: live and cached bytes together
/// stay within `memoryBudgetBytes`, and a request the cache cannot serve drops the
/// longest-kept buffers first to make room. Large buffers are mapped on their own, and the
/// request takes over the pages of one it dropped (`duo_resize_buffer`) instead of new ones.
public final class BufferPool: @unchecked Sendable {
    public static let shared = BufferPool()

    /// Live plus cached bytes the pool keeps within, where the live ones allow: half the
    /// memory this process may use.
    public var memoryBudgetBytes = BufferPool.usableMemoryBytes() / 2

    /// The machine's memory, or a container's limit on it where that is lower (cgroup v2's
    /// `memory.max`, v1's `memory.limit_in_bytes`): the figure an out-of-memory kill follows.
    static func usableMemoryBytes(
        limitFiles: [String] = [
            "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        ]
    ) -> Int {
        let physical = Int(clamping: ProcessInfo.processInfo.physicalMemory)
        let limits = limitFiles.compactMap { path -> Int? in
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
            return Int(text.trimmingCharacters(in: .whitespacesAndNewlines))  // "max": none
        }
        return ([physical] + limits).min()!
    }

    /// Bytes handed out as new memory (neither from the cache nor a dropped buffer's pages)
    /// since the process started: each such byte costs the kernel a page fault and a page
    /// clear on first write.
    public private(set) var freshBytes = 0

    /// Bytes of released buffers kept for reuse now.
    public var keptBytes: Int {
        lock.lock()
        defer { lock.unlock() }
        return cachedBytes
    }

    /// Released buffers by element count, oldest first, each with its release number.
    private var cached: [Int: [(pointer: UnsafeMutablePointer<Float>, released: Int)]] = [:]
    private var cachedBytes = 0
    private var liveBytes = 0
    private var releases = 0
    private let lock = NSLock()

    func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        lock.lock()
        liveBytes += bytes
        if let kept = cached[count]?.popLast() {
            cachedBytes -= bytes
            lock.unlock()
            return kept.pointer
        }
        // Over the budget, a large request takes over the kept buffer that covers most of it.
        let overBudget = liveBytes + cachedBytes > memoryBudgetBytes
        let taken = Self.isMapped(bytes) && overBudget ? takeCoveringMost(of: bytes) : nil
        let dropped = evictForBudget()
        freshBytes += bytes - min(bytes, taken?.bytes ?? 0)
        lock.unlock()
        dropped.forEach { Self.giveBack(memory: $0.pointer, bytes: $0.bytes) }
        let memory = taken.flatMap {
            duo_resize_buffer($0.pointer, $0.bytes, bytes)
        }
        if memory == nil, let taken {  // could not be resized: new memory after all
            Self.giveBack(memory: taken.pointer, bytes: taken.bytes)
            lock.lock()
            freshBytes += min(bytes, taken.bytes)
            lock.unlock()
        }
        return (memory ?? Self.fresh(bytes: bytes))
            .bindMemory(to: Float.self, capacity: max(count, 1))
    }

    /// Takes the longest-kept buffers out of the cache until live and cached bytes fit the
    /// budget (or the cache is empty); the caller frees them outside the lock.
    private func evictForBudget() -> [(pointer: UnsafeMutableRawPointer, bytes: Int)] {
        var evicted: [(pointer: UnsafeMutableRawPointer, bytes: Int)] = []
        while liveBytes + cachedBytes > memoryBudgetBytes, cachedBytes > 0 {
            guard
                let count = cached.filter({ !$0.value.isEmpty })
                    .min(by: { $0.value[0].released < $1.value[0].released })?.key
            else { break }
            let bytes = max(count, 1) * MemoryLayout<Float>.stride
            evicted.append((UnsafeMutableRawPointer(cached[count]!.removeFirst().pointer), bytes))
            cachedBytes -= bytes
        }
        return evicted
    }

    /// Takes out of the cache the mapped buffer whose pages cover most of a request of
    /// `bytes` (of two that cover it all, the smaller; of one size, the longest kept).
    private func takeCoveringMost(of bytes: Int) -> (pointer: UnsafeMutableRawPointer, bytes: Int)?
    {
        let stride = MemoryLayout<Float>.stride
        let sizes = cached.filter { !$0.value.isEmpty && Self.isMapped($0.key * stride) }.keys
        let best = sizes.max { a, b in
            let (coverA, coverB) = (min(a * stride, bytes), min(b * stride, bytes))
            return coverA != coverB ? coverA < coverB : a > b
        }
        guard let count = best else { return nil }
        cachedBytes -= count * stride
        return (UnsafeMutableRawPointer(cached[count]!.removeFirst().pointer), count * stride)
    }

    /// Buffers of at least this size are mapped on their own, 2 MiB aligned and marked
    /// for transparent huge pages: faulting in fresh 4 KiB pages dominated loading a 3.4 GB
    /// model (the kernel clearing and accounting 860K pages); huge pages cut that 512-fold.
    static func isMapped(_ bytes: Int) -> Bool { bytes >= 4 << 20 }

    /// New memory: 64-byte aligned (whole cache lines, aligned AVX-512 loads), or mapped.
    private static func fresh(bytes: Int) -> UnsafeMutableRawPointer {
        if isMapped(bytes), let mapped = duo_map_buffer(bytes) { return mapped }
        var pointer: UnsafeMutableRawPointer?
        guard !isMapped(bytes), posix_memalign(&pointer, 64, bytes) == 0, let pointer else {
            fatalError("out of memory allocating \(bytes) bytes")
        }
        return pointer
    }

    /// Gives memory from `fresh` back to the system.
    private static func giveBack(memory: UnsafeMutableRawPointer, bytes: Int) {
        if isMapped(bytes) { duo_unmap_buffer(memory, bytes) } else { free(memory) }
    }

    /// Keeps a released buffer for reuse: the bytes move from live to cached, so the total
    /// does not grow (a budget lowered since is enforced by the next fresh allocation).
    func release(_ pointer: UnsafeMutablePointer<Float>, count: Int) {
        lock.lock()
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        liveBytes -= bytes
        cachedBytes += bytes
        releases += 1
        cached[count, default: []].append((pointer, releases))
        lock.unlock()
    }

    /// Frees every cached buffer (for example between phases with different shapes).
    public func trim() {
        lock.lock()
        let buffers = cached
        cached = [:]
        cachedBytes = 0
        lock.unlock()
        for (count, kept) in buffers {
            let bytes = max(count, 1) * MemoryLayout<Float>.stride
            kept.forEach { Self.giveBack(memory: $0.pointer, bytes: bytes) }
        }
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
    /// with the bytes each counts against `derivedBudgetBytes`, valid for
    /// `derivedGeneration`.
    private var derivedValues: [String: (value: AnyObject, bytes: Int)] = [:]
    private var derivedGeneration = 0
    private static let derivedLock = NSLock()

    /// The most bytes the derived values that give their size may keep, over all memory:
    /// an eighth of the memory this process may use. Stable Diffusion's float32 Winograd
    /// transforms of every 3x3 kernel, forward and transposed, come to eight times its
    /// convolutions' weights, more than a 24 GB machine holds next to a training step; past
    /// the budget a transform is made for each call (a few percent of the call's work at
    /// these sizes) and the results are the same.
    nonisolated(unsafe) public static var derivedBudgetBytes = BufferPool.usableMemoryBytes() / 8
    nonisolated(unsafe) private static var derivedBytes = 0

    /// The bytes counted against `derivedBudgetBytes` now.
    static var keptDerivedBytes: Int {
        derivedLock.lock()
        defer { derivedLock.unlock() }
        return derivedBytes
    }

    /// The value kept under `key`, or `make()`'s, kept while the memory does not change,
    /// and when `bytes` is given, while all such values fit `derivedBudgetBytes`.
    func derived<T: AnyObject>(_ key: String, bytes: Int? = nil, make: () -> T?) -> T? {
        Storage.derivedLock.lock()
        if derivedGeneration != generation {
            dropDerivedValues()
            derivedGeneration = generation
        }
        let kept = derivedValues[key]?.value as? T
        let seen = generation
        Storage.derivedLock.unlock()
        if let kept { return kept }
        guard let made = make() else { return nil }
        Storage.derivedLock.lock()
        let fits = bytes.map { Storage.derivedBytes + $0 <= Storage.derivedBudgetBytes } ?? true
        if seen == generation && fits && derivedValues[key] == nil {
            derivedValues[key] = (made, bytes ?? 0)
            Storage.derivedBytes += bytes ?? 0
        }
        Storage.derivedLock.unlock()
        return made
    }

    /// Under `derivedLock`.
    private func dropDerivedValues() {
        Storage.derivedBytes -= derivedValues.values.reduce(0) { $0 + $1.bytes }
        derivedValues = [:]
    }

    deinit {
        if !derivedValues.isEmpty {
            Storage.derivedLock.lock()
            dropDerivedValues()
            Storage.derivedLock.unlock()
        }
        BufferPool.shared.release(pointer, count: count)
    }
}
