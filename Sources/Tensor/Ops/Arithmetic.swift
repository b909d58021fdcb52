import CKernels

/// Broadcasting add, subtract, multiply, divide, and their scalar forms.

private enum BinaryOp: Int32 {
    case add = 0, sub, mul, div
}

/// y = a (op) b with broadcasting, split over cores along the outer runs.
private func binaryForward(_ op: BinaryOp, _ a: Tensor, _ b: Tensor) -> Tensor {
    let outShape = Broadcast.shape(a.shape, b.shape)
    let y = Tensor.empty(outShape)
    let (dims, sets) = Broadcast.collapse(
        outShape,
        [
            Broadcast.strides(of: outShape, in: outShape),
            Broadcast.strides(of: a.shape, in: outShape),
            Broadcast.strides(of: b.shape, in: outShape),
        ])
    let inner = dims.last!
    let outerCount = dims.dropLast().reduce(1, *)
    Parallel.forEach(outerCount, costPerItem: inner) { range in
        Broadcast.forEachRun(dims, sets, outer: range) { offsets in
            duo_binary(
                op.rawValue, a.pointer + offsets[1], sets[1].last!, b.pointer + offsets[2],
                sets[2].last!, y.pointer + offsets[0], inner)
        }
    }
    return y
}

public func add(_ a: Tensor, _ b: Tensor) -> Tensor {
    binaryForward(.add, a, b).recorded("add", from: [a, b]) { dY in
        [
            a.requiresGrad ? Broadcast.sum(dY, to: a.shape) : nil,
            b.requiresGrad ? Broadcast.sum(dY, to: b.shape) : nil,
        ]
    }
}

public func sub(_ a: Tensor, _ b: Tensor) -> Tensor {
    binaryForward(.sub, a, b).recorded("sub", from: [a, b]) { dY in
        [
            a.requiresGrad ? Broadcast.sum(dY, to: a.shape) : nil,
            b.requiresGrad ? Broadcast.sum(dY * -1, to: b.shape) : nil,
        ]
    }
}

public func mul(_ a: Tensor, _ b: Tensor) -> Tensor {
    let (savedA, savedB) = (a.detached(), b.detached())
    return binaryForward(.mul, a, b).recorded("mul", from: [a, b]) { dY in
        [
            a.requiresGrad ? Broadcast.sum(binaryForward(.mul, dY, savedB), to: a.shape) : nil,
            b.requiresGrad ? Broadcast.sum(binaryForward(.mul, dY, savedA), to: b.shape) : nil,
        ]
    }
}

public func div(_ a: Tensor, _ b: Tensor) -> Tensor {
    let (savedA, savedB) = (a.detached(), b.detached())
    return binaryForward(.div, a, b).recorded("div", from: [a, b]) { dY in
        // d(a/b)/da = 1/b, d(a/b)/db = -a/b^2
        let dYOverB = binaryForward(.div, dY, savedB)
        let dB =
            b.requiresGrad
            ? Broadcast.sum(
                binaryForward(.div, binaryForward(.mul, dYOverB, savedA), savedB) * -1,
                to: b.shape)
            : nil
        return [a.requiresGrad ? Broadcast.sum(dYOverB, to: a.shape) : nil, dB]
    }
}

/// y = alpha * x + beta (the scalar forms of the four ops).
public func affine(_ x: Tensor, scale alpha: Float, shift beta: Float = 0) -> Tensor {
    let y = Tensor.empty(x.shape)
    Parallel.forEach(x.count) { r in
        duo_scale(alpha, x.pointer + r.lowerBound, y.pointer + r.lowerBound, r.count)
        if beta != 0 {
            var shift = beta
            duo_binary(0, y.pointer + r.lowerBound, 1, &shift, 0, y.pointer + r.lowerBound, r.count)
        }
    }
    return y.recorded("affine", from: [x]) { dY in [affine(dY, scale: alpha)] }
}

public func + (a: Tensor, b: Tensor) -> Tensor { add(a, b) }
public func - (a: Tensor, b: Tensor) -> Tensor { sub(a, b) }
public func * (a: Tensor, b: Tensor) -> Tensor { mul(a, b) }
public func / (a: Tensor, b: Tensor) -> Tensor { div(a, b) }
public func + (a: Tensor, b: Float) -> Tensor { affine(a, scale: 1, shift: b) }
public func - (a: Tensor, b: Float) -> Tensor { affine(a, scale: 1, shift: -b) }
public func * (a: Tensor, b: Float) -> Tensor { affine(a, scale: b) }
public func * (a: Float, b: Tensor) -> Tensor { affine(b, scale: a) }
public func / (a: Tensor, b: Float) -> Tensor { affine(a, scale: 1 / b) }
public prefix func - (a: Tensor) -> Tensor { affine(a, scale: -1) }

extension Tensor {
    /// self += other (same shape), outside the graph: for gradient accumulation.
    func addInPlace(_ other: Tensor) {
        precondition(other.shape == shape, "addInPlace \(other.shape) to \(shape)")
        storage.generation &+= 1
        Parallel.forEach(count) { r in
            duo_axpy(1, other.pointer + r.lowerBound, 1, pointer + r.lowerBound, r.count)
        }
    }

    /// self *= alpha, outside the graph: for gradient clipping.
    func scaleInPlace(_ alpha: Float) {
        storage.generation &+= 1
        Parallel.forEach(count) { r in
            duo_scale(alpha, pointer + r.lowerBound, pointer + r.lowerBound, r.count)
        }
    }
}
