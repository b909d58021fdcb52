import CKernels

/// Ops that move values without arithmetic: reshape, permute, concat, split, upsampling.

extension Tensor {
    /// The same values with another shape (one dimension may be -1, inferred).
    public func reshaped(_ newShape: [Int]) -> Tensor {
        let y = detachedReshape(newShape)
        let inputShape = shape
        return y.recorded("reshape", from: [self]) { dY in [dY.detachedReshape(inputShape)] }
    }

    /// A view with a new shape that shares storage and is outside the graph.
    func detachedReshape(_ newShape: [Int]) -> Tensor {
        var resolved = newShape
        if let inferred = newShape.firstIndex(of: -1) {
            let known = newShape.filter { $0 != -1 }.reduce(1, *)
            resolved[inferred] = known == 0 ? 0 : count / known
        }
        precondition(resolved.reduce(1, *) == count, "reshape \(shape) to \(newShape)")
        return Tensor(shape: resolved, storage: storage)
    }

    /// Dimensions reordered: result dimension i is input dimension `order[i]`.
    public func permuted(_ order: [Int]) -> Tensor {
        precondition(order.sorted() == Array(0..<rank), "permutation \(order) of rank \(rank)")
        let y = permute(self, order)
        var inverse = order
        for (i, d) in order.enumerated() { inverse[d] = i }
        return y.recorded("permute", from: [self]) { dY in [permute(dY, inverse)] }
    }

    /// Swaps two dimensions.
    public func transposed(_ a: Int, _ b: Int) -> Tensor {
        var order = Array(0..<rank)
        order.swapAt(a, b)
        return permuted(order)
    }
}

/// Copies x with dimensions reordered, walking the output contiguously.
private func permute(_ x: Tensor, _ order: [Int]) -> Tensor {
    let outShape = order.map { x.shape[$0] }
    let y = Tensor.empty(outShape)
    var inStrides = Array(repeating: 1, count: x.rank)
    for d in stride(from: x.rank - 2, through: 0, by: -1) {
        inStrides[d] = inStrides[d + 1] * x.shape[d + 1]
    }
    let stridesInOutOrder = order.map { inStrides[$0] }
    let (dims, sets) = Broadcast.collapse(
        outShape, [Broadcast.strides(of: outShape, in: outShape), stridesInOutOrder])
    let inner = dims.last!
    let innerStride = sets[1].last!
    Parallel.forEach(dims.dropLast().reduce(1, *), costPerItem: inner) { range in
        Broadcast.forEachRun(dims, sets, outer: range) { offsets in
            let src = x.pointer + offsets[1]
            let dst = y.pointer + offsets[0]
            if innerStride == 1 {
                dst.update(from: src, count: inner)
            } else {
                for i in 0..<inner { dst[i] = src[i * innerStride] }
            }
        }
    }
    return y
}

/// Joins tensors along `axis`; all other dimensions must agree.
public func concat(_ tensors: [Tensor], axis: Int) -> Tensor {
    precondition(!tensors.isEmpty, "concat of nothing")
    let first = tensors[0]
    let axis = axis < 0 ? axis + first.rank : axis
    for t in tensors {
        precondition(
            t.rank == first.rank
                && (0..<t.rank).allSatisfy { $0 == axis || t.shape[$0] == first.shape[$0] },
            "concat along \(axis): \(t.shape) vs \(first.shape)")
    }
    let sizes = tensors.map { $0.shape[axis] }
    var outShape = first.shape
    outShape[axis] = sizes.reduce(0, +)
    let y = Tensor.empty(outShape)
    let outer = first.shape[..<axis].reduce(1, *)
    let inner = first.shape[(axis + 1)...].reduce(1, *)
    let rowLength = outShape[axis] * inner
    var offset = 0
    for t in tensors {
        let run = t.shape[axis] * inner
        for o in 0..<outer {
            (y.pointer + o * rowLength + offset).update(from: t.pointer + o * run, count: run)
        }
        offset += run
    }
    return y.recorded("concat", from: tensors) { dY in
        let parts = splitValues(dY, sizes: sizes, axis: axis)
        return zip(tensors, parts).map { t, part in t.requiresGrad ? part : nil }
    }
}

/// Cuts x along `axis` into pieces of the given sizes (summing to that dimension).
public func split(_ x: Tensor, sizes: [Int], axis: Int) -> [Tensor] {
    let axis = axis < 0 ? axis + x.rank : axis
    precondition(
        sizes.reduce(0, +) == x.shape[axis], "split \(x.shape) into \(sizes) along \(axis)")
    let parts = splitValues(x, sizes: sizes, axis: axis)
    return parts.enumerated().map { index, part in
        part.recorded("split", from: [x]) { dPart in
            // Gradient zero outside this piece.
            let pieces = sizes.indices.map { i -> Tensor in
                var shape = x.shape
                shape[axis] = sizes[i]
                return i == index ? dPart : Tensor.zeros(shape)
            }
            return [GradMode.withNoGrad { concat(pieces, axis: axis) }]
        }
    }
}

/// Splits outside the graph (shared by split and concat's backward).
private func splitValues(_ x: Tensor, sizes: [Int], axis: Int) -> [Tensor] {
    let outer = x.shape[..<axis].reduce(1, *)
    let inner = x.shape[(axis + 1)...].reduce(1, *)
    let rowLength = x.shape[axis] * inner
    var offset = 0
    return sizes.map { size in
        var shape = x.shape
        shape[axis] = size
        let part = Tensor.empty(shape)
        let run = size * inner
        for o in 0..<outer {
            (part.pointer + o * run).update(from: x.pointer + o * rowLength + offset, count: run)
        }
        offset += run
        return part
    }
}

/// Nearest-neighbour 2x upsampling: [B, C, H, W] -> [B, C, 2H, 2W].
public func upsampleNearest2x(_ x: Tensor) -> Tensor {
    precondition(x.rank == 4, "upsampleNearest2x expects [B, C, H, W], got \(x.shape)")
    let (planes, h, w) = (x.shape[0] * x.shape[1], x.shape[2], x.shape[3])
    let y = Tensor.empty([x.shape[0], x.shape[1], 2 * h, 2 * w])
    Parallel.forEach(planes, costPerItem: 5 * h * w) { r in
        duo_upsample_nearest2x_forward(x.pointer, y.pointer, h, w, r.lowerBound, r.upperBound)
    }
    let inputShape = x.shape
    return y.recorded("upsample_nearest2x", from: [x]) { dY in
        let dX = Tensor.empty(inputShape)
        Parallel.forEach(planes, costPerItem: 5 * h * w) { r in
            duo_upsample_nearest2x_backward(
                dY.pointer, dX.pointer, h, w, r.lowerBound, r.upperBound)
        }
        return [dX]
    }
}

/// Zero padding of the last two dimensions: [..., H, W] -> [..., top + H + bottom,
/// left + W + right] (torch.nn.functional.pad with (left, right, top, bottom)).
public func pad2d(_ x: Tensor, left: Int = 0, right: Int = 0, top: Int = 0, bottom: Int = 0)
    -> Tensor
{
    precondition(
        x.rank >= 2 && [left, right, top, bottom].allSatisfy { $0 >= 0 },
        "pad2d of \(x.shape) by \([left, right, top, bottom])")
    let (h, w) = (x.shape[x.rank - 2], x.shape[x.rank - 1])
    let (ph, pw) = (h + top + bottom, w + left + right)
    let planes = x.count / max(h * w, 1)
    let y = Tensor.zeros(Array(x.shape.dropLast(2)) + [ph, pw])
    for p in 0..<planes {
        for i in 0..<h {
            (y.pointer + p * ph * pw + (i + top) * pw + left).update(
                from: x.pointer + p * h * w + i * w, count: w)
        }
    }
    let inputShape = x.shape
    return y.recorded("pad2d", from: [x]) { dY in
        // The gradient of padding is the crop.
        let dX = Tensor.empty(inputShape)
        for p in 0..<planes {
            for i in 0..<h {
                (dX.pointer + p * h * w + i * w).update(
                    from: dY.pointer + p * ph * pw + (i + top) * pw + left, count: w)
            }
        }
        return [dX]
    }
}

extension Tensor {
    /// Row `index` of the first axis, kept as a batch of one: [N, ...] -> [1, ...].
    public func slice(batch index: Int) -> Tensor { rows(index..<index + 1) }

    /// Rows `range` of the first axis: [N, ...] -> [range.count, ...].
    public func rows(_ range: Range<Int>) -> Tensor {
        let n = shape[0]
        if range == 0..<n { return self }
        let sizes = [range.lowerBound, range.count, n - range.upperBound].filter { $0 > 0 }
        return split(self, sizes: sizes, axis: 0)[range.lowerBound > 0 ? 1 : 0]
    }
}
