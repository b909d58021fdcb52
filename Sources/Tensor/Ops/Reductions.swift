import CKernels

/// Sums and means, over everything or over chosen axes.

/// The sum of all elements, as a scalar tensor (shape []).
public func sum(_ x: Tensor) -> Tensor {
    let total = Tensor.empty([])
    total.pointer[0] = Float(sumAll(x))
    let inputShape = x.shape
    return total.recorded("sum", from: [x]) { dY in [Broadcast.expand(dY, to: inputShape)] }
}

/// The mean of all elements, as a scalar tensor.
public func mean(_ x: Tensor) -> Tensor {
    sum(x) * (1 / Float(max(x.count, 1)))
}

/// Sums over `axes`; they are kept as size-1 dimensions when `keepDims` is true.
public func sum(_ x: Tensor, axes: [Int], keepDims: Bool = false) -> Tensor {
    let axes = Set(axes.map { $0 < 0 ? $0 + x.rank : $0 })
    let kept = x.shape.enumerated().map { axes.contains($0.offset) ? 1 : $0.element }
    var out = Broadcast.sum(x, to: kept)
    if out === x { out = x.copy() }  // never record onto the input itself
    if !keepDims {
        out = out.detachedReshape(
            x.shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element))
    }
    let inputShape = x.shape
    return out.recorded("sum_axes", from: [x]) { dY in
        [Broadcast.expand(dY.detachedReshape(kept), to: inputShape)]
    }
}

/// Means over `axes`.
public func mean(_ x: Tensor, axes: [Int], keepDims: Bool = false) -> Tensor {
    let n = axes.map { x.shape[$0 < 0 ? $0 + x.rank : $0] }.reduce(1, *)
    return sum(x, axes: axes, keepDims: keepDims) * (1 / Float(max(n, 1)))
}

/// The total in Double, summed per fixed block of 64K elements and then over blocks in
/// order: the same bits whatever the thread count.
func sumAll(_ x: Tensor) -> Double {
    let block = 1 << 16
    let blocks = (x.count + block - 1) / block
    var partials = [Double](repeating: 0, count: blocks)
    partials.withUnsafeMutableBufferPointer { out in
        Parallel.forEach(blocks, costPerItem: block) { range in
            for b in range {
                let lower = b * block
                out[b] = duo_sum(x.pointer + lower, min(block, x.count - lower))
            }
        }
    }
    return partials.reduce(0, +)
}

extension Broadcast {
    /// Repeats x along its size-1 (or missing leading) dimensions to `shape`.
    static func expand(_ x: Tensor, to shape: [Int]) -> Tensor {
        if x.shape == shape { return x }
        let y = Tensor.empty(shape)
        let (dims, sets) = collapse(
            shape, [strides(of: shape, in: shape), strides(of: x.shape, in: shape)])
        let inner = dims.last!
        Parallel.forEach(dims.dropLast().reduce(1, *), costPerItem: inner) { range in
            forEachRun(dims, sets, outer: range) { offsets in
                let dst = y.pointer + offsets[0]
                if sets[1].last! == 0 {
                    dst.update(repeating: x.pointer[offsets[1]], count: inner)
                } else {
                    dst.update(from: x.pointer + offsets[1], count: inner)
                }
            }
        }
        return y
    }
}
