import CKernels

/// oneDNN (Debian's libdnnl-dev), opened at run time by `Sources/CKernels/onednn.c`: bf16
/// convolutions (`BF16Convolution`) and linear layers (`BF16Linear`) under
/// `BLAS.mixedPrecision` on CPUs with AVX512-BF16, where its kernels outrun duo's own (the
/// A/B is in BENCHMARKS.md, "Mixed precision (bf16)"). Where it is missing duo runs its own.
public enum OneDNN {
    /// Whether libdnnl.so.2 was found.
    public static let isAvailable = duo_onednn_available() != 0

    /// Off: bf16 runs on duo's own kernels only (the benchmarks' A/B).
    nonisolated(unsafe) public static var isEnabled = true

    /// Whether mixed-precision work goes through oneDNN now.
    static var isUsed: Bool {
        BLAS.mixedPrecision && BF16GEMM.isNative && isEnabled && isAvailable
    }

    /// A frozen weight in the layout a oneDNN primitive asks for, made on first use and
    /// kept with the weight's memory until that memory changes (`Storage.derived`):
    /// reordering costs about as much as a small product, so sampling and LoRA training pay
    /// it once. Trainable weights change every step and are not kept.
    static func prepared(
        _ weight: Tensor, key: String, make: () -> OpaquePointer?
    ) -> PreparedWeights? {
        guard !weight.requiresGrad else { return nil }
        return weight.storage.derived("onednn " + key) { make().map(PreparedWeights.init) }
    }

    /// oneDNN's copy of a weight, freed with this object.
    final class PreparedWeights {
        let pointer: OpaquePointer
        init(_ pointer: OpaquePointer) { self.pointer = pointer }
        deinit { duo_onednn_weights_free(pointer) }
    }

    /// x [count] in bf16, in a float tensor's memory (two values per float).
    static func roundedBF16(_ x: UnsafePointer<Float>, count: Int)
        -> (memory: Tensor, words: UnsafeMutablePointer<UInt16>)
    {
        let memory = Tensor.empty([(count + 1) / 2])
        let words = UnsafeMutableRawPointer(memory.pointer).assumingMemoryBound(to: UInt16.self)
        Parallel.forEach(count) { r in duo_round_bf16(x, words, r.lowerBound, r.upperBound) }
        return (memory, words)
    }
}
