import CKernels

/// Linear layers' products with bf16 operands and float32 sums through oneDNN's matmul
/// (`OneDNN`), with frozen weights reordered once: y = x Wᵀ (+ b) forward and dX = dY W
/// backward. Where oneDNN is missing, `linear` multiplies with `BLAS.gemm`.
enum BF16Linear {
    /// Smaller products (multiply-adds) stay on duo's GEMM: oneDNN's per-call setup costs
    /// more than it saves there.
    static let minimumWork = 1 << 22

    static func applies(rows: Int, outFeatures: Int, inFeatures: Int) -> Bool {
        OneDNN.isUsed && rows * outFeatures * inFeatures >= minimumWork
    }

    /// y [rows, out] = x [rows, in] Wᵀ + bias, with weight [out, in]; false when oneDNN
    /// failed (then y holds nothing usable).
    static func forward(
        _ x: Tensor, weight: Tensor, bias: Tensor?, into y: Tensor, rows: Int
    ) -> Bool {
        let (outFeatures, inFeatures) = (weight.shape[0], weight.shape[1])
        return product(
            x, weight: weight, transposed: true, bias: bias, into: y, m: rows, n: outFeatures,
            k: inFeatures)
    }

    /// dX [rows, in] = dY [rows, out] W, with weight [out, in]; false when oneDNN failed.
    static func inputGradient(_ dY: Tensor, weight: Tensor, into dX: Tensor, rows: Int) -> Bool {
        let (outFeatures, inFeatures) = (weight.shape[0], weight.shape[1])
        return product(
            dY, weight: weight, transposed: false, bias: nil, into: dX, m: rows, n: inFeatures,
            k: outFeatures)
    }

    /// c [m, n] = a [m, k] op(weight) (+ bias), op(weight) [k, n].
    private static func product(
        _ a: Tensor, weight: Tensor, transposed: Bool, bias: Tensor?, into c: Tensor, m: Int,
        n: Int, k: Int
    ) -> Bool {
        let threads = Int32(Parallel.availableThreads)
        let prepared = OneDNN.prepared(weight, key: "matmul \(transposed) \(m)") {
            duo_onednn_prepare_matmul_weights(m, n, k, weight.pointer, transposed ? 1 : 0, threads)
        }
        let rounded = OneDNN.roundedBF16(a.pointer, count: m * k)
        return withExtendedLifetime(rounded.memory) {
            duo_onednn_matmul_bf16(
                m, n, k, rounded.words, weight.pointer, transposed ? 1 : 0, prepared?.pointer,
                bias?.pointer, c.pointer, threads) != 0
        }
    }
}
