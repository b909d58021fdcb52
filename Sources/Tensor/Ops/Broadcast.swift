import CKernels

/// NumPy broadcasting: shapes are aligned at their last dimension and a dimension of 1
/// stretches to match.
enum Broadcast {
    static func shape(_ a: [Int], _ b: [Int]) -> [Int] {
        let rank = max(a.count, b.count)
        let pa = Array(repeating: 1, count: rank - a.count) + a
        let pb = Array(repeating: 1, count: rank - b.count) + b
        return zip(pa, pb).map { x, y in
            precondition(x == y || x == 1 || y == 1, "cannot broadcast \(a) with \(b)")
            return max(x, y)
        }
    }

    /// Row-major strides of `shape` seen inside `outShape`, 0 along broadcast dimensions.
    static func strides(of shape: [Int], in outShape: [Int]) -> [Int] {
        let padded = Array(repeating: 1, count: outShape.count - shape.count) + shape
        var strides = Array(repeating: 0, count: outShape.count)
        var step = 1
        for d in stride(from: outShape.count - 1, through: 0, by: -1) {
            strides[d] = padded[d] == 1 && outShape[d] != 1 ? 0 : step
            step *= padded[d]
        }
        return strides
    }

    /// Merges adjacent dimensions that every operand walks contiguously, so the inner loop
    /// is as long as possible: [B, C, H, W] + [1, C, 1, 1] becomes [B, C, H*W].
    static func collapse(_ shape: [Int], _ strideSets: [[Int]]) -> ([Int], [[Int]]) {
        var dims: [Int] = []
        var sets: [[Int]] = strideSets.map { _ in [] }
        for d in 0..<shape.count where shape[d] != 1 {
            let mergeable =
                !dims.isEmpty
                && strideSets.indices.allSatisfy { i in
                    sets[i].last! == strideSets[i][d] * shape[d]
                }
            if mergeable {
                dims[dims.count - 1] *= shape[d]
                for i in sets.indices { sets[i][sets[i].count - 1] = strideSets[i][d] }
            } else {
                dims.append(shape[d])
                for i in sets.indices { sets[i].append(strideSets[i][d]) }
            }
        }
        if dims.isEmpty { return ([1], strideSets.map { _ in [1] }) }
        return (dims, sets)
    }

    /// Visits each innermost run of a collapsed iteration: `body(offsets)` where offsets
    /// are the starting element of each operand for that run. The offsets buffer is
    /// reused across runs (no allocation per run: runs can be short and many).
    static func forEachRun(
        _ dims: [Int], _ strideSets: [[Int]], outer: Range<Int>, _ body: ([Int]) -> Void
    ) {
        let outerDims = dims.dropLast()
        var offsets = Array(repeating: 0, count: strideSets.count)
        for index in outer {
            var rest = index
            for s in offsets.indices { offsets[s] = 0 }
            for d in outerDims.indices.reversed() {
                let i = rest % outerDims[d]
                rest /= outerDims[d]
                for s in offsets.indices { offsets[s] += i * strideSets[s][d] }
            }
            body(offsets)
        }
    }

    /// Sums `x` down to `shape` (the adjoint of broadcasting `shape` to `x.shape`).
    static func sum(_ x: Tensor, to shape: [Int]) -> Tensor {
        if x.shape == shape { return x }
        let out = Tensor.zeros(shape)
        let (dims, sets) = collapse(
            x.shape,
            [
                strides(of: x.shape, in: x.shape),
                strides(of: shape, in: x.shape),
            ])
        let inner = dims.last!
        let outerCount = dims.dropLast().reduce(1, *)
        // Serial: several runs may add into the same output elements.
        forEachRun(dims, sets, outer: 0..<outerCount) { offsets in
            let src = x.pointer + offsets[0]
            let dst = out.pointer + offsets[1]
            if sets[1].last! == 0 {
                dst[0] += Float(duo_sum(src, inner))
            } else {
                duo_axpy(1, src, 1, dst, inner)
            }
        }
        return out
    }
}
