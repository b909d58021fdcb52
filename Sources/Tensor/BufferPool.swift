import CKernels
import Foundation

/// A caching allocator for tensor memory.
///
/// Training allocates the same activation and gradient sizes every step. Writing into
/// freshly mapped pages runs at a fraction of memory speed (the kernel faults and clears
/// each page), so released buffers are kept by exact size and handed out again. A step
/// with activation checkpointing releases and asks again for far more than it holds at
/// once, so what bounds the cache is the memory in use: live, cached and reserved bytes
/// together stay within `memoryBudgetBytes`, and a request the cache cannot serve drops the
/// longest-kept buffers first to make room. Large buffers are mapped on their own; the pages
/// of those dropped are not given back but reserved, and large requests are made of them
/// (moved side by side, `duo_gather_pages`) before any new ones.
public final class BufferPool: @unchecked Sendable {
    public static let shared = BufferPool()

    /// Live, cached and reserved bytes the pool keeps within, where the live ones allow:
    /// half the memory this process may use.
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

    /// Bytes handed out as new memory (neither from the cache nor reserved pages) since the
    /// process started: each such byte costs the kernel a page fault and a page clear on
    /// first write. Large buffers count whole 2 MiB.
    public private(set) var freshBytes = 0

    /// Bytes of released buffers and reserved pages kept for reuse now.
    public var keptBytes: Int {
        lock.lock()
        defer { lock.unlock() }
        return cachedBytes + reservedBytes
    }

    /// Released buffers by element count, oldest first, each with its release number.
    private var cached: [Int: [(pointer: UnsafeMutablePointer<Float>, released: Int)]] = [:]
    private var cachedBytes = 0
    private var liveBytes = 0
    private var releases = 0
    /// Pages of large buffers dropped from the cache, for the next large requests.
    private var reserved: [MappedRun] = []
    private var reservedBytes = 0
    /// The runs of large buffers made of more than one mapping, by their first byte.
    private var gathered: [UnsafeMutableRawPointer: MappedRun] = [:]
    private let lock = NSLock()

    /// Mapped memory as the kernel holds it: `pieces` (byte lengths, whole 2 MiB) side by
    /// side from `start`, each its own mapping, since `mremap` moves one mapping at a time.
    struct MappedRun {
        var start: UnsafeMutableRawPointer
        var pieces: [Int]
        var length: Int { pieces.reduce(0, +) }

        /// The first `length` bytes, and the rest where there is any.
        func split(at length: Int) -> (head: MappedRun, rest: MappedRun?) {
            var head: [Int] = [], taken = 0, index = 0
            while taken < length {
                let part = min(pieces[index], length - taken)
                head.append(part)
                taken += part
                index += 1
            }
            var rest = Array(pieces[index...])
            if head.last! < pieces[index - 1] { rest.insert(pieces[index - 1] - head.last!, at: 0) }
            return (
                MappedRun(start: start, pieces: head),
                rest.isEmpty ? nil : MappedRun(start: start + length, pieces: rest)
            )
        }
    }

    /// Memory given back to the system outside the lock: mapped (`length` bytes) or not.
    private typealias Dropped = (start: UnsafeMutableRawPointer, length: Int, mapped: Bool)

    func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        lock.lock()
        liveBytes += bytes
        if let kept = cached[count]?.popLast() {
            cachedBytes -= bytes
            lock.unlock()
            return kept.pointer
        }
        var dropped: [Dropped] = []
        let length = Self.isMapped(bytes) ? duo_mapped_length(bytes) : bytes
        let taken = Self.isMapped(bytes) ? takePages(length, dropping: &dropped) : []
        dropped += settleBudget()
        let covered = taken.reduce(0) { $0 + $1.length }
        freshBytes += length - covered
        lock.unlock()
        dropped.forEach(Self.giveBack)
        let memory = taken.isEmpty ? Self.fresh(bytes: bytes) : compose(taken, bytes: bytes)
        return memory.bindMemory(to: Float.self, capacity: max(count, 1))
    }

    /// Reserved pages for a large request of `length` mapped bytes: the smallest run that
    /// covers what is left, else the largest, and while live, cached and reserved bytes are
    /// over the budget, the pages of the longest-kept buffers dropped for it. Under the lock.
    private func takePages(_ length: Int, dropping dropped: inout [Dropped]) -> [MappedRun] {
        var taken: [MappedRun] = []
        var covered = 0
        func draw() {
            while covered < length, !reserved.isEmpty {
                let need = length - covered
                let index =
                    reserved.indices.filter { reserved[$0].length >= need }
                    .min { reserved[$0].length < reserved[$1].length }
                    ?? reserved.indices.max { reserved[$0].length < reserved[$1].length }!
                // Without moving pages, only a run that holds the whole request serves it.
                if duo_can_move_pages() == 0 && (!taken.isEmpty || reserved[index].length < need) {
                    return
                }
                let run = reserved.remove(at: index)
                let (head, rest) = run.split(at: min(need, run.length))
                taken.append(head)
                covered += head.length
                reservedBytes -= head.length
                if let rest { reserved.append(rest) }
            }
        }
        draw()
        while covered < length && liveBytes + cachedBytes + reservedBytes > memoryBudgetBytes,
            let oldest = removeOldestCached()
        {
            if oldest.mapped {
                reserved.append(
                    gathered.removeValue(forKey: oldest.start)
                        ?? MappedRun(start: oldest.start, pieces: [oldest.length]))
                reservedBytes += oldest.length
                draw()
            } else {
                dropped.append(oldest)
            }
        }
        return taken
    }

    /// Reserved pages, then the longest-kept buffers, dropped until live, cached and
    /// reserved bytes fit the budget (or nothing is kept). Under the lock.
    private func settleBudget() -> [Dropped] {
        var dropped: [Dropped] = []
        while liveBytes + cachedBytes + reservedBytes > memoryBudgetBytes {
            if !reserved.isEmpty {
                let run = reserved.removeFirst()
                reservedBytes -= run.length
                dropped.append((run.start, run.length, true))
            } else if let oldest = removeOldestCached() {
                gathered[oldest.start] = nil
                dropped.append(oldest)
            } else {
                break
            }
        }
        return dropped
    }

    /// The longest-kept buffer, out of the cache. Under the lock.
    private func removeOldestCached() -> Dropped? {
        guard
            let count = cached.filter({ !$0.value.isEmpty })
                .min(by: { $0.value[0].released < $1.value[0].released })?.key
        else { return nil }
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        cachedBytes -= bytes
        let start = UnsafeMutableRawPointer(cached[count]!.removeFirst().pointer)
        return Self.isMapped(bytes)
            ? (start, duo_mapped_length(bytes), true) : (start, bytes, false)
    }

    /// One buffer of `bytes` from reserved runs: the run itself where it is one that holds
    /// it all, else the runs' pieces moved side by side with new pages for the rest.
    private func compose(_ runs: [MappedRun], bytes: Int) -> UnsafeMutableRawPointer {
        let length = duo_mapped_length(bytes)
        var run = runs[0]
        if runs.count > 1 || run.length < length {
            let starts = runs.flatMap { run in
                run.pieces.indices.map { run.start + run.pieces[..<$0].reduce(0, +) }
            }
            let pieces = runs.flatMap(\.pieces)
            let covered = pieces.reduce(0, +)
            guard
                let start = starts.map({ Optional($0) }).withUnsafeBufferPointer({ starts in
                    duo_gather_pages(starts.baseAddress, pieces, pieces.count, bytes)
                })
            else {  // the pieces are gone: new memory after all
                lock.lock()
                freshBytes += covered
                lock.unlock()
                return Self.fresh(bytes: bytes)
            }
            run = MappedRun(
                start: start, pieces: covered < length ? pieces + [length - covered] : pieces)
        }
        if run.pieces.count > 1 {
            lock.lock()
            gathered[run.start] = run
            lock.unlock()
        }
        return run.start
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

    /// Gives memory from `fresh` or a reserved run back to the system.
    private static func giveBack(_ memory: Dropped) {
        if memory.mapped {
            duo_unmap_buffer(memory.start, memory.length)
        } else {
            free(memory.start)
        }
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

    /// Frees every cached buffer and reserved page (for example between phases with
    /// different shapes).
    public func trim() {
        lock.lock()
        var dropped: [Dropped] = reserved.map { ($0.start, $0.length, true) }
        while let oldest = removeOldestCached() {
            gathered[oldest.start] = nil
            dropped.append(oldest)
        }
        (reserved, reservedBytes) = ([], 0)
        lock.unlock()
        dropped.forEach(Self.giveBack)
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
