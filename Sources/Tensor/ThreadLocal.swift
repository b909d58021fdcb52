import Foundation

/// An integer per thread, 0 on a thread that never set it: state that work running on
/// several threads at once must not share (whether ops record gradients, how many threads
/// a split nested in another may use, whether adapters are switched off).
public final class ThreadLocalInt: @unchecked Sendable {
    private let key: pthread_key_t

    public init() {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        self.key = key
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
}
