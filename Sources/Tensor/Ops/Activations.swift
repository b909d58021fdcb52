import CKernels

/// Pointwise activations. Each saves its input and computes dX = dY * f'(x) in C.

private typealias Forward = (UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, Int) -> Void
private typealias Backward = (
    UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, Int
) -> Void

private func pointwise(
    _ name: String, _ x: Tensor, _ forward: Forward, _ backward: @escaping Backward
) -> Tensor {
    let y = Tensor.empty(x.shape)
    Parallel.forEach(x.count, costPerItem: 4) { r in
        forward(x.pointer + r.lowerBound, y.pointer + r.lowerBound, r.count)
    }
    let saved = x.detached()
    return y.recorded(name, from: [x]) { dY in
        let dX = Tensor.empty(saved.shape)
        Parallel.forEach(saved.count, costPerItem: 4) { r in
            let o = r.lowerBound
            backward(saved.pointer + o, dY.pointer + o, dX.pointer + o, r.count)
        }
        return [dX]
    }
}

/// x * sigmoid(x)
public func silu(_ x: Tensor) -> Tensor {
    pointwise("silu", x, duo_silu_forward, duo_silu_backward)
}

/// GELU, exact (erf) by default as torch.nn.functional.gelu, or the tanh approximation.
public func gelu(_ x: Tensor, approximate: Bool = false) -> Tensor {
    approximate
        ? pointwise("gelu_tanh", x, duo_gelu_tanh_forward, duo_gelu_tanh_backward)
        : pointwise("gelu", x, duo_gelu_forward, duo_gelu_backward)
}

/// GEGLU (Shazeer 2020, eq. 5) on the last axis split in halves [h | g]: h * GELU(g), exact
/// GELU, as diffusers' GEGLU computes it after its projection. [..., 2n] -> [..., n].
/// One pass each way: splitting the halves apart first copied the projection's output.
public func geglu(_ x: Tensor) -> Tensor {
    let width = x.shape.last ?? 0
    precondition(width % 2 == 0, "geglu: last axis \(width) is odd")
    let inner = width / 2, rows = x.count / max(width, 1)
    let y = Tensor.empty(Array(x.shape.dropLast()) + [inner])
    Parallel.forEach(rows, costPerItem: 3 * inner) { r in
        duo_geglu_forward(
            x.pointer + r.lowerBound * width, y.pointer + r.lowerBound * inner, inner, r.count)
    }
    let saved = x.detached()
    return y.recorded("geglu", from: [x]) { dY in
        let dX = Tensor.empty(saved.shape)
        Parallel.forEach(rows, costPerItem: 6 * inner) { r in
            let o = r.lowerBound
            duo_geglu_backward(
                saved.pointer + o * width, dY.pointer + o * inner, dX.pointer + o * width, inner,
                r.count)
        }
        return [dX]
    }
}

/// x * sigmoid(1.702 x), as in CLIP.
public func quickGELU(_ x: Tensor) -> Tensor {
    pointwise("quick_gelu", x, duo_quick_gelu_forward, duo_quick_gelu_backward)
}

/// log(1 + e^x)
public func softplus(_ x: Tensor) -> Tensor {
    pointwise("softplus", x, duo_softplus_forward, duo_softplus_backward)
}

/// log sigmoid(x), stable for large |x|.
public func logSigmoid(_ x: Tensor) -> Tensor {
    pointwise("logsigmoid", x, duo_logsigmoid_forward, duo_logsigmoid_backward)
}

/// e^x
public func exp(_ x: Tensor) -> Tensor {
    let y = Tensor.empty(x.shape)
    Parallel.forEach(x.count, costPerItem: 4) { r in
        duo_exp(x.pointer + r.lowerBound, y.pointer + r.lowerBound, r.count)
    }
    let saved = y.detached()
    return y.recorded("exp", from: [x]) { dY in [mul(dY, saved)] }
}

/// min(max(x, low), high); the gradient passes where low <= x <= high.
public func clamp(_ x: Tensor, min low: Float, max high: Float) -> Tensor {
    let y = Tensor.empty(x.shape)
    let (src, dst) = (x.pointer, y.pointer)
    for i in 0..<x.count { dst[i] = Swift.min(Swift.max(src[i], low), high) }
    let saved = x.detached()
    return y.recorded("clamp", from: [x]) { dY in
        let dX = Tensor.empty(saved.shape)
        let (s, g, d) = (saved.pointer, dY.pointer, dX.pointer)
        for i in 0..<saved.count { d[i] = s[i] >= low && s[i] <= high ? g[i] : 0 }
        return [dX]
    }
}
