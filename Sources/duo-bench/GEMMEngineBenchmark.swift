import Foundation
import Tensor

/// Float32 GEMMs on one thread, oneDNN's sgemm against OpenBLAS's in the same run, at the
/// shapes the embedded model's DUO step and sampling run most (row-major C [m, n] =
/// op(A) op(B), beta 0): Winograd's per-point products (m = output channels, n = tiles,
/// k = input channels), linear layers over a shard's tokens, their gradients, and the
/// strides `BLAS.oneDNNReadsWell` leaves to OpenBLAS (the rule is off here: both engines
/// run every shape), and the same GEMMs on rows `BLAS.paddedRowStride` apart, as the
/// Winograd and im2col buffers lay them out.
func runGEMMEngineBenchmark() {
    // (name, transA, transB, m, n, k, B and C in padded rows)
    let shapes: [(String, Bool, Bool, Int, Int, Int, Bool)] = [
        ("Winograd 32x32, 32 channels, 10 images", false, false, 32, 640, 32, false),
        ("Winograd 16x16, 64 channels, 10 images", false, false, 64, 160, 64, false),
        ("Winograd 8x8, 64 channels, 10 images", false, false, 64, 40, 64, false),
        ("linear 64->64 over 10x256 tokens", false, true, 2560, 64, 64, false),
        ("feed-forward 64->512 over 10x256 tokens", false, true, 2560, 512, 64, false),
        ("feed-forward 256->64 over 10x256 tokens", false, true, 2560, 64, 256, false),
        ("linear dX, 64->64", false, false, 2560, 64, 64, false),
        ("linear dW, 64->64", true, false, 64, 64, 2560, false),
        ("conv_out 32->3 at 32x32 (im2col)", false, false, 3, 1024, 288, false),
        ("B rows 1024 floats apart (left to OpenBLAS)", false, false, 32, 1024, 64, false),
        ("B rows 512 floats apart (left to OpenBLAS)", false, false, 64, 512, 64, false),
        ("Winograd 32x32, 32 channels, 8 images, padded", false, false, 32, 512, 32, true),
        ("Winograd 32x32, 64 channels, 8 images, padded", false, false, 64, 512, 64, true),
        ("Winograd 16x16, 64 channels, 8 images, padded", false, false, 64, 128, 64, true),
        ("conv_out 32->3 at 32x32 (im2col), padded", false, false, 3, 1024, 288, true),
    ]
    print("\n# float32 GEMM on one thread: oneDNN's sgemm vs OpenBLAS (m x n x k, GFLOP/s)")
    let saved = BLAS.engine
    defer { BLAS.engine = saved }
    BLAS.engine = .oneDNN
    guard BLAS.activeEngine == .oneDNN else {
        print("oneDNN (libdnnl.so.2) is not installed here: OpenBLAS runs every GEMM")
        return
    }
    for (name, transA, transB, m, n, k, padded) in shapes {
        let ld = padded ? BLAS.paddedRowStride(n) : n
        let a = RandomKey(seed: 1).normal(count: m * k)
        let b = RandomKey(seed: 2).normal(count: k * ld)
        var c = [Float](repeating: 0, count: m * ld)
        func seconds(_ engine: BLAS.Engine) -> Double {
            let repeats = max(1, Int(2e8 / Double(2 * m * n * k)))
            return time {
                for _ in 0..<repeats {
                    BLAS.engineGEMM(
                        engine, transA: transA, transB: transB, m: m, n: n, k: k, a: a,
                        lda: transA ? m : k, b: b, ldb: transB ? k : ld, c: &c, ldc: ld)
                }
            } / Double(repeats)
        }
        let flops = 2 * Double(m * n * k)
        let (oneDNN, openBLAS) = (seconds(.oneDNN), seconds(.openBLAS))
        row(
            "\(name) (\(m) x \(n) x \(k))", gflops(flops, oneDNN), "GFLOP/s",
            String(
                format: "OpenBLAS %.1f, oneDNN %.2fx", gflops(flops, openBLAS), openBLAS / oneDNN))
    }
}
