import CKernels

/// 1x1 convolutions between a channels-first map and token rows, as a transformer block's
/// proj_in and proj_out apply them (diffusers' Transformer2DModel without linear
/// projection): the GEMMs read or write the other layout through their transpose flags, so
/// neither the map nor the tokens are copied into the other layout first.

/// y [B, P, O] = x[b]ᵀ Wᵀ + bias for a map x [B, C, P] (P pixels) and W [O, C]: proj_in, the
/// map's pixels as token rows.
public func pointwiseToTokens(_ x: Tensor, weight: Tensor, bias: Tensor? = nil) -> Tensor {
    let (batch, c, p) = (x.shape[0], x.shape[1], x.shape[2])
    let o = weight.shape[0]
    precondition(
        x.rank == 3 && weight.shape == [o, c],
        "pointwiseToTokens: x \(x.shape), weight \(weight.shape)")
    let y = Tensor.empty([batch, p, o])
    Parallel.forEachPart(batch, costPerItem: 2 * p * c * o) { _, images in
        for n in images {
            BLAS.gemm(
                transA: true, transB: true, m: p, n: o, k: c, a: x.pointer + n * c * p, lda: p,
                b: weight.pointer, ldb: c, c: y.pointer + n * p * o, ldc: o)
            if let bias { duo_add_bias_rows(y.pointer + n * p * o, bias.pointer, p, o) }
        }
    }
    let (savedX, savedW) = (x.detached(), weight.detached())
    return y.recorded("pointwiseToTokens", from: [x, weight] + (bias.map { [$0] } ?? [])) { dY in
        var grads: [Tensor?] = [nil, nil]
        if x.requiresGrad {  // dX[b] [C, P] = Wᵀ dY[b]ᵀ
            let dX = Tensor.empty(savedX.shape)
            Parallel.forEachPart(batch, costPerItem: 2 * p * c * o) { _, images in
                for n in images {
                    BLAS.gemm(
                        transA: true, transB: true, m: c, n: p, k: o, a: savedW.pointer, lda: c,
                        b: dY.pointer + n * p * o, ldb: o, c: dX.pointer + n * c * p, ldc: p)
                }
            }
            grads[0] = dX
        }
        if weight.requiresGrad {  // dW [O, C] = Σ_b dY[b]ᵀ x[b]ᵀ
            let dW = Tensor.empty(savedW.shape)
            for n in 0..<batch {
                BLAS.gemm(
                    transA: true, transB: true, m: o, n: c, k: p, a: dY.pointer + n * p * o,
                    lda: o, b: savedX.pointer + n * c * p, ldb: p, beta: n == 0 ? 0 : 1,
                    c: dW.pointer, ldc: c)
            }
            grads[1] = dW
        }
        if let bias { grads.append(bias.requiresGrad ? Broadcast.sum(dY, to: [o]) : nil) }
        return grads
    }
}

/// y [N, O, P] = W t[n]ᵀ + bias + residual for token rows t [N, P, C], W [O, C] and a
/// residual [N, O, P] (nil: none): proj_out back to a channels-first map, the block's
/// residual added by the GEMM itself (β = 1 over the residual and bias).
public func pointwiseFromTokens(
    _ t: Tensor, weight: Tensor, bias: Tensor? = nil, residual: Tensor? = nil
) -> Tensor {
    let (batch, p, c) = (t.shape[0], t.shape[1], t.shape[2])
    let o = weight.shape[0]
    precondition(
        t.rank == 3 && weight.shape == [o, c],
        "pointwiseFromTokens: t \(t.shape), weight \(weight.shape)")
    precondition(
        residual == nil || residual!.shape == [batch, o, p],
        "pointwiseFromTokens: residual \(residual!.shape)")
    let y = Tensor.empty([batch, o, p])
    Parallel.forEachPart(batch, costPerItem: 2 * p * c * o) { _, images in
        for n in images {
            let yn = y.pointer + n * o * p
            if let residual {
                let rn = residual.pointer + n * o * p
                if let bias {
                    for j in 0..<o {
                        duo_binary(0, rn + j * p, 1, bias.pointer + j, 0, yn + j * p, p)
                    }
                } else {
                    yn.update(from: rn, count: o * p)
                }
            } else if let bias {
                for j in 0..<o { (yn + j * p).update(repeating: bias.pointer[j], count: p) }
            }
            BLAS.gemm(
                transB: true, m: o, n: p, k: c, a: weight.pointer, lda: c,
                b: t.pointer + n * p * c, ldb: c, beta: residual == nil && bias == nil ? 0 : 1,
                c: yn, ldc: p)
        }
    }
    let (savedT, savedW) = (t.detached(), weight.detached())
    let inputs = [t, weight] + (bias.map { [$0] } ?? []) + (residual.map { [$0] } ?? [])
    return y.recorded("pointwiseFromTokens", from: inputs) { dY in
        var grads: [Tensor?] = [nil, nil]
        if t.requiresGrad {  // dT[n] [P, C] = dY[n]ᵀ W
            let dT = Tensor.empty(savedT.shape)
            Parallel.forEachPart(batch, costPerItem: 2 * p * c * o) { _, images in
                for n in images {
                    BLAS.gemm(
                        transA: true, m: p, n: c, k: o, a: dY.pointer + n * o * p, lda: p,
                        b: savedW.pointer, ldb: c, c: dT.pointer + n * p * c, ldc: c)
                }
            }
            grads[0] = dT
        }
        if weight.requiresGrad {  // dW [O, C] = Σ_n dY[n] t[n]
            let dW = Tensor.empty(savedW.shape)
            for n in 0..<batch {
                BLAS.gemm(
                    m: o, n: c, k: p, a: dY.pointer + n * o * p, lda: p,
                    b: savedT.pointer + n * p * c, ldb: c, beta: n == 0 ? 0 : 1, c: dW.pointer,
                    ldc: c)
            }
            grads[1] = dW
        }
        if let bias {
            grads.append(bias.requiresGrad ? Broadcast.sum(dY, to: [1, o, 1]).reshaped([o]) : nil)
        }
        if let residual { grads.append(residual.requiresGrad ? dY : nil) }
        return grads
    }
}
