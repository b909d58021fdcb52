import Foundation

/// An integer per thread, 0 on a thread that never set it: state that work running on
/// several threads at once must not share (whether ops record gradients, how many threads
/// a split nested in another may use, whether adapters are switched off).
public final class ThreadLocalInt: @unchecked Sendable {
    private let key: pthread_key_t

    /// `inherited`: a `Parallel` split's workers start with the value of the thread that
    /// started the split (a shard sampled under `withNoGrad` records nothing either).
    public init(inherited: Bool = false) {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        self.key = key
        if inherited {
            Self.lock.lock()
            Self.inheritedLocals.append(self)
            Self.lock.unlock()
        }
    }

    /// This thread's value (the integer is stored as the key's pointer: no allocation).
    public var value: Int {
        get { Int(bitPattern: pthread_getspecific(key)) }
        set { pthread_setspecific(key, UnsafeRawPointer(bitPattern: newValue)) }
    }

    /// Runs `body` with this thread's value set to `value`, then restores the previous one.
    public func with<R>(_ value: Int, _ body: () throws -> R) rethrows -> R {
        let previous = self.value
        self.value = value
        defer { self.value = previous }
        return try body()
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var inheritedLocals: [ThreadLocalInt] = []

    /// The calling thread's values of the inherited locals.
    static func inheritedValues() -> [(ThreadLocalInt, Int)] {
        lock.lock()
        defer { lock.unlock() }
        return inheritedLocals.map { ($0, $0.value) }
    }

    /// Runs `body` with `values` (from `inheritedValues()` on another thread) set.
    static func with<R>(_ values: [(ThreadLocalInt, Int)], _ body: () -> R) -> R {
        let previous = values.map { ($0.0, $0.0.value) }
        for (local, value) in values { local.value = value }
        defer { for (local, value) in previous { local.value = value } }
        return body()
    }
}
