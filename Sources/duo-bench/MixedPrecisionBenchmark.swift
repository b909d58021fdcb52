import Foundation
import Tensor

/// duo's GEMM in float32 (OpenBLAS tiles split over cores) and in bf16 mixed precision
/// (`BF16GEMM`) at Stable Diffusion 1.5's shapes, and, with a Python given
/// (`DUO_BENCH_PYTHON`), PyTorch's bf16 matmul (oneDNN) at the same shapes in the same run.
func runMixedPrecisionGEMMBenchmark() {
    print("\n# GEMM at SD 1.5's shapes (M x K x N): float32 vs bf16 operands with float32 sums")
    print(
        "AVX512-BF16: \(BF16GEMM.isNative ? "yes" : "no (the portable tile: expect it far below)")")
    let shapes: [(String, Int, Int, Int)] = [
        ("conv 3x3 320->320 at 64x64, per image", 320, 2880, 4096),
        ("conv 3x3 1280->1280 at 8x8, batch 2", 1280, 11520, 128),
        ("linear 320->320 over 2x4096 tokens", 8192, 320, 320),
        ("feed-forward 320->2560 over 2x4096 tokens", 8192, 320, 2560),
        ("attention scores, one head (4096 x 40 x 4096)", 4096, 40, 4096),
        ("square 1024", 1024, 1024, 1024),
    ]
    var torchRates: [Double] = []
    if let python = ProcessInfo.processInfo.environment["DUO_BENCH_PYTHON"] {
        torchRates = torchBF16GFLOPs(python: python, shapes: shapes.map { ($0.1, $0.2, $0.3) })
    }
    for (i, (name, m, k, n)) in shapes.enumerated() {
        let a = Tensor.randn([m, k], key: RandomKey(seed: 1))
        let b = Tensor.randn([k, n], key: RandomKey(seed: 2))
        let c = Tensor.zeros([m, n])
        let flops = 2 * Double(m * n * k)
        let fp32 = gflops(flops, time(repeats: 5) { gemmInto(a, b, c, m, n, k, bf16: false) })
        let bf16 = gflops(flops, time(repeats: 5) { gemmInto(a, b, c, m, n, k, bf16: true) })
        var note = String(format: "fp32 %.1f, bf16/fp32 %.2fx", fp32, bf16 / fp32)
        if i < torchRates.count {
            note += String(
                format: ", torch bf16 %.1f (ours/torch %.2fx)", torchRates[i], bf16 / torchRates[i])
        }
        row("\(name) (\(m) x \(k) x \(n))", bf16, "GFLOP/s", note)
    }
}

func gemmInto(_ a: Tensor, _ b: Tensor, _ c: Tensor, _ m: Int, _ n: Int, _ k: Int, bf16: Bool) {
    a.withUnsafeBufferPointer { a in
        b.withUnsafeBufferPointer { b in
            c.withUnsafeMutableBufferPointer { c in
                if bf16 {
                    BF16GEMM.gemm(
                        m: m, n: n, k: k, a: a.baseAddress!, lda: k, b: b.baseAddress!, ldb: n,
                        c: c.baseAddress!, ldc: n)
                } else {
                    BLAS.gemm(
                        m: m, n: n, k: k, a: a.baseAddress!, lda: k, b: b.baseAddress!, ldb: n,
                        c: c.baseAddress!, ldc: n)
                }
            }
        }
    }
}

/// PyTorch's bf16 matmul rate per shape (best of 5 after a warm-up, as `time`), on the
/// threads this process has.
func torchBF16GFLOPs(python: String, shapes: [(Int, Int, Int)]) -> [Double] {
    let cores = ProcessInfo.processInfo.activeProcessorCount
    let script = """
        import time, torch
        torch.set_num_threads(\(cores))
        for m, k, n in \(shapes.map { [$0.0, $0.1, $0.2] }):
            a = torch.randn(m, k).bfloat16(); b = torch.randn(k, n).bfloat16()
            torch.matmul(a, b)
            best = 1e9
            for _ in range(5):
                t = time.perf_counter(); torch.matmul(a, b); best = min(best, time.perf_counter() - t)
            print(2 * m * n * k / best / 1e9)
        """
    let process = Process()
    process.executableURL = URL(fileURLWithPath: python)
    process.arguments = ["-c", script]
    let pipe = Pipe()
    process.standardOutput = pipe
    do { try process.run() } catch { return [] }
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { Double($0) }
}
