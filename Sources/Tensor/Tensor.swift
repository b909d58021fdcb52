/// An n-dimensional array of Float32 in contiguous row-major order, with the autodiff
/// bookkeeping of the op that made it.
///
/// Tensors are reference types: a parameter is one object that the optimizer updates in
/// place and whose `grad` the backward pass fills.
public final class Tensor: @unchecked Sendable {
    public let shape: [Int]
    public let storage: Storage
    /// Whether gradients flow to this tensor. For a parameter, `false` means frozen.
    public var requiresGrad: Bool
    /// Accumulated gradient of a leaf tensor after `backward()`.
    public internal(set) var grad: Tensor?
    /// How to propagate gradients to the inputs of the op that produced this tensor.
    var gradFn: GradFn?

    init(shape: [Int], storage: Storage, requiresGrad: Bool = false) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        precondition(
            storage.count == shape.reduce(1, *), "storage of \(storage.count) for \(shape)")
        self.shape = shape
        self.storage = storage
        self.requiresGrad = requiresGrad
    }

    /// Uninitialized memory for an op's output; the op writes every element.
    static func empty(_ shape: [Int]) -> Tensor {
        Tensor(shape: shape, storage: Storage(uninitializedCount: shape.reduce(1, *)))
    }

    public convenience init(_ scalars: [Float], shape: [Int], requiresGrad: Bool = false) {
        precondition(
            scalars.count == shape.reduce(1, *), "\(scalars.count) values for shape \(shape)")
        let storage = Storage(uninitializedCount: scalars.count)
        scalars.withUnsafeBufferPointer {
            storage.pointer.update(from: $0.baseAddress!, count: scalars.count)
        }
        self.init(shape: shape, storage: storage, requiresGrad: requiresGrad)
    }

    public static func zeros(_ shape: [Int], requiresGrad: Bool = false) -> Tensor {
        full(0, shape, requiresGrad: requiresGrad)
    }

    public static func ones(_ shape: [Int], requiresGrad: Bool = false) -> Tensor {
        full(1, shape, requiresGrad: requiresGrad)
    }

    public static func full(_ value: Float, _ shape: [Int], requiresGrad: Bool = false) -> Tensor {
        let t = empty(shape)
        t.pointer.update(repeating: value, count: t.count)
        t.requiresGrad = requiresGrad
        return t
    }

    public var count: Int { storage.count }
    public var rank: Int { shape.count }
    var pointer: UnsafeMutablePointer<Float> { storage.pointer }

    /// A copy of the values.
    public var scalars: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

    /// The single value of a one-element tensor.
    public var item: Float {
        precondition(count == 1, "item of a tensor with \(count) elements")
        return pointer[0]
    }

    /// Calls `body` with the values, for reading without a copy.
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R)
        rethrows -> R
    {
        try body(UnsafeBufferPointer(start: pointer, count: count))
    }

    /// Calls `body` with the values for writing in place (parameters, loaded weights).
    /// Not recorded by autodiff.
    public func withUnsafeMutableBufferPointer<R>(
        _ body: (UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        storage.generation &+= 1
        return try body(UnsafeMutableBufferPointer(start: pointer, count: count))
    }

    /// The same values, outside the graph: no gradient flows through the result.
    public func detached() -> Tensor { Tensor(shape: shape, storage: storage) }

    /// A copy with its own memory, outside the graph.
    public func copy() -> Tensor {
        let t = Tensor.empty(shape)
        t.pointer.update(from: pointer, count: count)
        return t
    }

    /// Overwrites the values with those of `other` (same shape). Not recorded by autodiff.
    public func assign(_ other: Tensor) {
        precondition(other.shape == shape, "assign \(other.shape) to \(shape)")
        storage.generation &+= 1
        pointer.update(from: other.pointer, count: count)
    }

    /// Drops the accumulated gradient.
    public func zeroGrad() { grad = nil }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let preview = scalars.prefix(8).map { String(format: "%.4g", $0) }.joined(separator: ", ")
        return "Tensor(\(shape), [\(preview)\(count > 8 ? ", ..." : "")])"
    }
}
