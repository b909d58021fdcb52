import Tensor

/// Uniform draws in (0, 1) taken one at a time from a `RandomKey`'s stream, in chunks.
///
/// A scene reads its values in a fixed order from a few such streams (content, objects,
/// splatter), so a field's value depends only on the key and its place in the order.
struct RandomDraws {
    private let key: RandomKey
    private var chunk: [Float] = []
    private var chunkIndex: UInt64 = 0
    private var position = 0
    private static let chunkSize = 32

    init(key: RandomKey) { self.key = key }

    /// The next uniform value in (0, 1).
    mutating func next() -> Float {
        if position == chunk.count {
            chunk = key.fold(in: chunkIndex).uniform(count: Self.chunkSize)
            chunkIndex += 1
            position = 0
        }
        defer { position += 1 }
        return chunk[position]
    }

    /// A uniform value in `low...high`.
    mutating func next(_ low: Float, _ high: Float) -> Float { low + (high - low) * next() }

    /// A uniform index in `0..<count`.
    mutating func index(_ count: Int) -> Int { min(count - 1, Int(next() * Float(count))) }

    /// One of `items`, uniformly.
    mutating func pick<T>(_ items: [T]) -> T { items[index(items.count)] }

    /// An index drawn with the given non-negative weights.
    mutating func weighted(_ weights: [Float]) -> Int {
        var target = next() * weights.reduce(0, +)
        for (i, weight) in weights.enumerated() {
            target -= weight
            if target < 0 { return i }
        }
        return weights.count - 1
    }
}
