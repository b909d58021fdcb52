import CKernels

/// Multi-head scaled dot-product attention, softmax(Q K^T / sqrt(d)) V
/// (Vaswani et al. 2017, eq. 1), on heads packed along the feature dimension as the
/// projections produce them, so no transposes are needed around it.
///
/// query: [B, Tq, heads * d], key and value: [B, Tk, heads * d] -> [B, Tq, heads * d].
/// Self-attention passes the same sequence length for both; cross-attention a text
/// sequence for key and value. `causal` hides key j from query i when j > i.
public func scaledDotProductAttention(
    query: Tensor, key: Tensor, value: Tensor, heads: Int, causal: Bool = false
) -> Tensor {
    precondition(
        query.rank == 3 && key.rank == 3 && key.shape == value.shape,
        "attention: q \(query.shape), k \(key.shape), v \(value.shape)")
    let (batch, tq, width) = (query.shape[0], query.shape[1], query.shape[2])
    precondition(
        key.shape[0] == batch && key.shape[2] == width && width % heads == 0,
        "attention: q \(query.shape), k \(key.shape), \(heads) heads")
    let d = width / heads
    let s = duo_attention_shape(
        B: batch, H: heads, Tq: tq, Tk: key.shape[1], d: d, ldq: width, ldk: width, ldv: width,
        ldo: width, scale: 1 / Float(d).squareRoot(), causal: causal ? 1 : 0)
    let cost = tq * s.Tk * d * 4
    // The probabilities are kept for the backward pass only, and only while the
    // [B, heads, Tq, Tk] matrix is small; a larger one the backward kernel computes again,
    // block by block, from Q and K (the same bits). Without a backward pass each block of
    // rows stays in the kernel's scratch.
    let recording = GradMode.isEnabled && [query, key, value].contains { $0.requiresGrad }
    // bf16 mixed precision: both passes on bf16 GEMMs, P recomputed in the backward pass.
    let mixed = BLAS.mixedPrecision && BF16GEMM.isNative && !causal
    var kept: Tensor?
    func attend() -> Tensor {
        let out = Tensor.empty(query.shape)
        kept =
            !mixed && recording && batch * heads * tq * s.Tk <= keptProbabilitiesLimit
            ? Tensor.empty([batch, heads, tq, s.Tk]) : nil
        Parallel.forEach(batch * heads, costPerItem: cost) { r in
            var shape = s
            if mixed {
                duo_attention_forward_bf16(
                    &shape, query.pointer, key.pointer, value.pointer, out.pointer,
                    r.lowerBound, r.upperBound)
            } else {
                duo_attention_forward(
                    &shape, query.pointer, key.pointer, value.pointer, out.pointer,
                    kept?.pointer, r.lowerBound, r.upperBound)
            }
        }
        return out
    }
    // Inside a checkpointed part, an attention over more keys than half its width (each
    // output then costs more multiply-adds than a projection's) is kept from the part's
    // first run for its second rather than computed again; its backward pass then computes
    // P again (kept == nil) as it does for large P.
    let out = 2 * s.Tk > width ? Checkpoint.reusingOutput(attend) : attend()
    guard recording else { return out }
    let saved = (q: query.detached(), k: key.detached(), v: value.detached(), out: out.detached())
    return out.recorded("attention", from: [query, key, value]) { dOut in
        let (dQ, dK, dV) = (
            Tensor.empty(saved.q.shape), Tensor.empty(saved.k.shape),
            Tensor.empty(saved.v.shape)
        )
        Parallel.forEach(batch * heads, costPerItem: cost * 2) { r in
            var shape = s
            if mixed {
                duo_attention_backward_bf16(
                    &shape, saved.q.pointer, saved.k.pointer, saved.v.pointer,
                    saved.out.pointer, dOut.pointer, dQ.pointer, dK.pointer, dV.pointer,
                    r.lowerBound, r.upperBound)
            } else {
                duo_attention_backward(
                    &shape, saved.q.pointer, saved.k.pointer, saved.v.pointer,
                    saved.out.pointer, kept?.pointer, dOut.pointer, dQ.pointer,
                    dK.pointer, dV.pointer, r.lowerBound, r.upperBound)
            }
        }
        return [dQ, dK, dV]
    }
}

/// Attention probabilities kept from the forward pass up to this many floats (64 MiB);
/// larger matrices are recomputed in the backward pass. A variable so that a test can
/// take both paths on small shapes.
nonisolated(unsafe) public var keptProbabilitiesLimit = 1 << 24
