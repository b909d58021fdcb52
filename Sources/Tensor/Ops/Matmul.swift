import CKernels

/// Matrix products on BLAS: matmul (batched, with a shared right-hand matrix) and linear.

/// a: [..., M, K] x b: [K, N] or [..., M, K] x [..., K, N] (same leading dims) -> [..., M, N]
public func matmul(_ a: Tensor, _ b: Tensor) -> Tensor {
    precondition(a.rank >= 2 && b.rank >= 2, "matmul needs matrices: \(a.shape) x \(b.shape)")
    let (m, k) = (a.shape[a.rank - 2], a.shape[a.rank - 1])
    let n = b.shape[b.rank - 1]
    precondition(b.shape[b.rank - 2] == k, "matmul inner sizes: \(a.shape) x \(b.shape)")
    let batch = a.count / (m * k)
    let sharedB = b.rank == 2
    precondition(
        sharedB || b.shape.dropLast(2) == a.shape.dropLast(2),
        "matmul batch dims: \(a.shape) x \(b.shape)")
    let y = Tensor.empty(Array(a.shape.dropLast()) + [n])
    if sharedB {
        // One GEMM over all rows: [batch*M, K] x [K, N].
        gemm(a, b, into: y, m: batch * m, n: n, k: k)
    } else {
        batchedGEMM(a, b, into: y, batch: batch, m: m, n: n, k: k)
    }
    let (savedA, savedB) = (a.detached(), b.detached())
    return y.recorded("matmul", from: [a, b]) { dY in
        var dA: Tensor?
        var dB: Tensor?
        if a.requiresGrad {
            // dA = dY B^T
            dA = Tensor.empty(a.shape)
            batchedGEMM(
                dY, savedB, into: dA!, batch: sharedB ? 1 : batch, m: sharedB ? batch * m : m,
                n: k, k: n, transB: true)
        }
        if b.requiresGrad {
            // dB = A^T dY, summed over the batch when B is shared
            dB = Tensor.empty(b.shape)
            batchedGEMM(
                savedA, dY, into: dB!, batch: sharedB ? 1 : batch, m: k, n: n,
                k: sharedB ? batch * m : m, transA: true)
        }
        return [dA, dB]
    }
}

/// x: [..., in], weight: [out, in], bias: [out] -> [..., out]  (y = x W^T + b, as nn.Linear)
public func linear(_ x: Tensor, weight: Tensor, bias: Tensor? = nil) -> Tensor {
    let (outFeatures, inFeatures) = (weight.shape[0], weight.shape[1])
    precondition(
        weight.rank == 2 && x.shape.last == inFeatures,
        "linear: x \(x.shape) with weight \(weight.shape)")
    precondition(bias == nil || bias!.shape == [outFeatures], "linear: bias \(bias!.shape)")
    let rows = x.count / inFeatures
    let y = Tensor.empty(Array(x.shape.dropLast()) + [outFeatures])
    let oneDNN = BF16Linear.applies(rows: rows, outFeatures: outFeatures, inFeatures: inFeatures)
    if !oneDNN || !BF16Linear.forward(x, weight: weight, bias: bias, into: y, rows: rows) {
        BLAS.gemm(
            transB: true, m: rows, n: outFeatures, k: inFeatures, a: x.pointer, lda: inFeatures,
            b: weight.pointer, ldb: inFeatures, c: y.pointer, ldc: outFeatures)
        if let bias {
            Parallel.forEach(rows, costPerItem: outFeatures) { range in
                duo_add_bias_rows(
                    y.pointer + range.lowerBound * outFeatures, bias.pointer, range.count,
                    outFeatures)
            }
        }
    }
    let (savedX, savedW) = (x.detached(), weight.detached())
    let inputs = [x, weight] + (bias.map { [$0] } ?? [])
    return y.recorded("linear", from: inputs) { dY in
        var grads: [Tensor?] = [nil, nil]
        if x.requiresGrad {  // dX = dY W
            let dX = Tensor.empty(savedX.shape)
            if !oneDNN || !BF16Linear.inputGradient(dY, weight: savedW, into: dX, rows: rows) {
                BLAS.gemm(
                    m: rows, n: inFeatures, k: outFeatures, a: dY.pointer, lda: outFeatures,
                    b: savedW.pointer, ldb: inFeatures, c: dX.pointer, ldc: inFeatures)
            }
            grads[0] = dX
        }
        if weight.requiresGrad {  // dW = dY^T X
            let dW = Tensor.empty(savedW.shape)
            BLAS.gemm(
                transA: true, m: outFeatures, n: inFeatures, k: rows, a: dY.pointer,
                lda: outFeatures, b: savedX.pointer, ldb: inFeatures, c: dW.pointer,
                ldc: inFeatures)
            grads[1] = dW
        }
        if let bias { grads.append(bias.requiresGrad ? Broadcast.sum(dY, to: [outFeatures]) : nil) }
        return grads
    }
}

/// C = op(A) op(B) for row-major operands with op(A) [m, k], op(B) [k, n].
private func gemm(
    _ a: Tensor, _ b: Tensor, into c: Tensor, m: Int, n: Int, k: Int,
    transA: Bool = false, transB: Bool = false
) {
    BLAS.gemm(
        transA: transA, transB: transB, m: m, n: n, k: k, a: a.pointer,
        lda: transA ? m : k, b: b.pointer, ldb: transB ? k : n, c: c.pointer, ldc: n)
}

/// `batch` independent GEMMs over consecutive matrices; an operand with a single matrix
/// (count == one matrix) is shared by all of them.
private func batchedGEMM(
    _ a: Tensor, _ b: Tensor, into c: Tensor, batch: Int, m: Int, n: Int,
    k: Int, transA: Bool = false, transB: Bool = false
) {
    let strideA = a.count == m * k ? 0 : m * k
    let strideB = b.count == k * n ? 0 : k * n
    for i in 0..<batch {
        BLAS.gemm(
            transA: transA, transB: transB, m: m, n: n, k: k, a: a.pointer + i * strideA,
            lda: transA ? m : k, b: b.pointer + i * strideB, ldb: transB ? k : n,
            c: c.pointer + i * m * n, ldc: n)
    }
}
