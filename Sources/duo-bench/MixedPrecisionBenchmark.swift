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

/// SD 1.5's 3x3 convolutions at batch 2 under bf16 mixed precision: oneDNN's direct
/// convolution on channels-last images (with duo's layout changes around it; the weights'
/// layout made once, as for a frozen model), against im2col + duo's bf16 GEMM, and the
/// float32 path (Winograd), in one run.
func runMixedPrecisionConvolutionBenchmark() {
    print("\n# 3x3 convolutions at SD 1.5's shapes, batch 2: bf16 operands with float32 sums")
    guard BF16GEMM.isNative else { return print("skipped: this CPU has no AVX512-BF16") }
    guard OneDNN.isAvailable else { return print("skipped: oneDNN is not installed") }
    for (channels, size) in [(320, 64), (640, 32), (1280, 16), (1280, 8)] {
        let x = Tensor.randn([2, channels, size, size], key: RandomKey(seed: 1))
        let weight = Tensor.randn([channels, channels, 3, 3], key: RandomKey(seed: 2))
        let flops = 2 * Double(2 * channels * channels * 9 * size * size)
        func rate(mixed: Bool, oneDNN: Bool) -> Double {
            BLAS.mixedPrecision = mixed
            OneDNN.isEnabled = oneDNN
            defer { (BLAS.mixedPrecision, OneDNN.isEnabled) = (false, true) }
            return gflops(flops, time(repeats: 5) { _ = conv2d(x, weight: weight, padding: 1) })
        }
        let oneDNN = rate(mixed: true, oneDNN: true)
        let ownGEMM = rate(mixed: true, oneDNN: false)
        let fp32 = rate(mixed: false, oneDNN: false)
        row(
            "conv 3x3 \(channels)->\(channels) at \(size)x\(size), oneDNN", oneDNN, "GFLOP/s",
            String(
                format: "im2col + duo bf16 GEMM %.1f (oneDNN %.2fx), fp32 %.1f", ownGEMM,
                oneDNN / ownGEMM, fp32))
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
