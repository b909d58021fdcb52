// `make bench`: throughput of the tensor core on the model's shapes, each figure beside
// OpenBLAS's own sgemm measured in the same run.
import Diffusion
import Formats
import Foundation
import Tensor

/// Best seconds of `body` over `repeats` runs after one warm-up (the least disturbed run).
func time(repeats: Int = 21, _ body: () -> Void) -> Double {
    body()
    var samples: [Double] = []
    for _ in 0..<repeats {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        samples.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
    return samples.min()!
}

func gflops(_ flops: Double, _ seconds: Double) -> Double { flops / seconds / 1e9 }

func row(_ name: String, _ value: Double, _ unit: String, _ note: String = "") {
    print(
        name.padding(toLength: 58, withPad: " ", startingAt: 0)
            + String(format: "%9.1f %@", value, unit) + (note.isEmpty ? "" : "   " + note))
}

/// OpenBLAS sgemm, C[m, n] = A[m, k] B[k, n], threaded by OpenBLAS itself.
func sgemmGFLOPs(m: Int, n: Int, k: Int) -> Double {
    let cores = ProcessInfo.processInfo.activeProcessorCount
    let a = Tensor.randn([m, k], key: RandomKey(seed: 1))
    let b = Tensor.randn([k, n], key: RandomKey(seed: 2))
    let c = Tensor.zeros([m, n])
    let seconds = time {
        a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                c.withUnsafeMutableBufferPointer { c in
                    BLAS.referenceGEMM(
                        threads: cores, m: m, n: n, k: k, a: a.baseAddress!,
                        b: b.baseAddress!, c: c.baseAddress!)
                }
            }
        }
    }
    return gflops(2 * Double(m * n * k), seconds)
}

/// `duo-bench [section...]` runs only the named sections (sgemm, engines, bf16, conv, attention,
/// pointwise, train, exp, digest); `duo-bench sd-step DIR [STEPS]` times DUO steps on a full-size
/// SD 1.x pipeline folder and reports peak memory; `duo-bench sd-unet DIR` measures loading and running a full-size
/// SD 1.x UNet (run on its own: it reports the process's peak memory); `duo-bench
/// sampling DIR [PYTHON]` times sampling against diffusers' pipeline on a model folder;
/// `duo-bench unlearn DIR [PYTHON [ROUNDS]]` a DUO step against PyTorch + peft, ROUNDS
/// times alternately; `duo-bench
/// synthesis DIR [PYTHON]` SDEdit pairs against diffusers' pipelines on a world
/// model folder; `duo-bench evaluation DIR CONCEPT` duo eval's images per minute; `duo-bench
/// unet-forward UNET_DIR [PYTHON]` a UNet forward pass against diffusers' and the GEMM peak; `duo-bench
/// train-vs-diffusers PYTHON` a training step against PyTorch's.
// DUO_BENCH_NO_WINOGRAD=1 runs every convolution as im2col + GEMM, for A/B comparisons
// of whole models (BENCHMARKS.md).
if ProcessInfo.processInfo.environment["DUO_BENCH_NO_WINOGRAD"] != nil {
    Winograd.isEnabled = false
}
// DUO_BENCH_SMALL_TILES=1 runs Winograd with F(2x2, 3x3) tiles only (none below 16x16 pixels),
// as before F(4x4, 3x3).
if ProcessInfo.processInfo.environment["DUO_BENCH_SMALL_TILES"] != nil {
    Winograd.largeTiles = false
}

// DUO_BENCH_OPENBLAS=1 runs float32 GEMMs on OpenBLAS instead of oneDNN's sgemm, for A/B
// comparisons of whole models (BENCHMARKS.md, "float32 GEMMs").
if ProcessInfo.processInfo.environment["DUO_BENCH_OPENBLAS"] != nil {
    BLAS.engine = .openBLAS
}

let sections = Set(CommandLine.arguments.dropFirst())
func wanted(_ section: String) -> Bool { sections.isEmpty || sections.contains(section) }

if CommandLine.arguments.count >= 3 && CommandLine.arguments[1] == "sd-unet" {
    let arguments = CommandLine.arguments
    runSDUNetBenchmark(directory: arguments[2], python: arguments.count > 3 ? arguments[3] : nil)
    exit(0)
}
if CommandLine.arguments.count >= 3 && CommandLine.arguments[1] == "sd-step" {
    let arguments = CommandLine.arguments
    runSDStepBenchmark(
        directory: arguments[2], steps: arguments.count > 3 ? Int(arguments[3]) ?? 2 : 2)
    exit(0)
}
if CommandLine.arguments.count == 3 && CommandLine.arguments[1] == "train-vs-diffusers" {
    runTrainingStepBenchmark(python: CommandLine.arguments[2])
    exit(0)
}
if CommandLine.arguments.count >= 3 && CommandLine.arguments[1] == "unlearn" {
    let arguments = CommandLine.arguments
    runUnlearningStepBenchmark(
        directory: arguments[2], python: arguments.count > 3 ? arguments[3] : nil,
        rounds: arguments.count > 4 ? Int(arguments[4]) ?? 1 : 1)
    exit(0)
}
if CommandLine.arguments.count >= 3 && CommandLine.arguments[1] == "synthesis" {
    let arguments = CommandLine.arguments
    runSynthesisBenchmark(directory: arguments[2], python: arguments.count > 3 ? arguments[3] : nil)
    exit(0)
}
if CommandLine.arguments.count == 4 && CommandLine.arguments[1] == "evaluation" {
    runEvaluationBenchmark(directory: CommandLine.arguments[2], concept: CommandLine.arguments[3])
    exit(0)
}
if CommandLine.arguments.count >= 3 && CommandLine.arguments[1] == "unet-forward" {
    let arguments = CommandLine.arguments
    runUNetForwardBenchmark(
        directory: arguments[2], python: arguments.count > 3 ? arguments[3] : nil)
    exit(0)
}
if CommandLine.arguments.count >= 3 && CommandLine.arguments[1] == "sampling" {
    let arguments = CommandLine.arguments
    runSamplingBenchmark(directory: arguments[2], python: arguments.count > 3 ? arguments[3] : nil)
    exit(0)
}

print(
    "duo bench — \(ProcessInfo.processInfo.activeProcessorCount) cores; duo splits GEMMs over cores"
)
print("itself (single-threaded OpenBLAS); the sgemm references use OpenBLAS's own threads.")
let convGEMM = sgemmGFLOPs(m: 64, n: 1024, k: 576)
if wanted("sgemm") {
    print("\n# OpenBLAS sgemm at the models' shapes (M x K x N)")
    row("conv 3x3 64->64 at 32x32, per image (64 x 576 x 1024)", convGEMM, "GFLOP/s")
    row(
        "conv 3x3 32->32 at 32x32, per image (32 x 288 x 1024)",
        sgemmGFLOPs(m: 32, n: 1024, k: 288), "GFLOP/s")
    row(
        "linear 64->64 over 8x256 tokens (2048 x 64 x 64)", sgemmGFLOPs(m: 2048, n: 64, k: 64),
        "GFLOP/s")
    row(
        "feed-forward 64->512 over 8x256 tokens (2048 x 64 x 512)",
        sgemmGFLOPs(m: 2048, n: 512, k: 64), "GFLOP/s")
    row("square 1024 (peak reference)", sgemmGFLOPs(m: 1024, n: 1024, k: 1024), "GFLOP/s")
}
if wanted("engines") {
    runGEMMEngineBenchmark()
}

// OpenBLAS's idle workers spin for a while after a threaded call: let them settle so they
// do not take cycles from what is measured next.
Thread.sleep(forTimeInterval: 0.5)

if wanted("bf16") {
    runMixedPrecisionGEMMBenchmark()
    runMixedPrecisionConvolutionBenchmark()
}

if wanted("conv") {
    print(
        "\n# conv2d 3x3, 64->64 channels, 32x32, batch 16, padding 1 (GFLOP/s of the direct convolution's FLOPs)"
    )
    let x = Tensor.randn([16, 64, 32, 32], key: RandomKey(seed: 3))
    let w = Tensor.randn([64, 64, 3, 3], key: RandomKey(seed: 4)) * 0.05
    let b = Tensor.zeros([64])
    let flops = 2.0 * 16 * 64 * 576 * 1024
    let forward = time { _ = GradMode.withNoGrad { conv2d(x, weight: w, bias: b, padding: 1) } }
    let fwd = gflops(flops, forward)
    row("forward", fwd, "GFLOP/s", String(format: "%.2f of sgemm (goal >= 0.6)", fwd / convGEMM))
    [x, w, b].forEach { $0.requiresGrad = true }
    let dY = Tensor.randn([16, 64, 32, 32], key: RandomKey(seed: 5))
    let both = time {
        conv2d(x, weight: w, bias: b, padding: 1).backward(dY)
        [x, w, b].forEach { $0.zeroGrad() }
    }
    let fwdBwd = gflops(3 * flops, both)
    row(
        "forward + backward (dX, dW, db)", fwdBwd, "GFLOP/s",
        String(format: "%.2f of sgemm (goal >= 0.5)", fwdBwd / convGEMM))
    // The same convolution with Winograd F(2x2, 3x3) off: im2col + GEMM throughout.
    Winograd.isEnabled = false
    let direct = time { _ = GradMode.withNoGrad { conv2d(x, weight: w, bias: b, padding: 1) } }
    let directBoth = time {
        conv2d(x, weight: w, bias: b, padding: 1).backward(dY)
        [x, w, b].forEach { $0.zeroGrad() }
    }
    Winograd.isEnabled = true
    row(
        "forward, im2col + GEMM (Winograd off)", gflops(flops, direct), "GFLOP/s",
        String(format: "Winograd is %.2fx as fast", direct / forward))
    row(
        "forward + backward, im2col + GEMM", gflops(3 * flops, directBoth), "GFLOP/s",
        String(format: "Winograd is %.2fx as fast", directBoth / both))
    // F(4x4, 3x3) tiles against what runs without them: F(2x2, 3x3) at 32x32 and 16x16,
    // im2col + GEMM at 8x8 (Winograd.applies).
    func tileSizes(_ x: Tensor, _ w: Tensor, _ label: String, without: String = "F(2x2, 3x3)") {
        let flops = 2.0 * Double(x.count) * Double(w.shape[0] * 9)
        let dY = Tensor.randn(x.shape, key: RandomKey(seed: 11))
        var seconds: [(forward: Double, both: Double)] = []
        for large in [true, false] {
            Winograd.largeTiles = large
            let forward = time { _ = GradMode.withNoGrad { conv2d(x, weight: w, padding: 1) } }
            [x, w].forEach { $0.requiresGrad = true }
            let both = time {
                conv2d(x, weight: w, padding: 1).backward(dY)
                [x, w].forEach { $0.zeroGrad() }
            }
            [x, w].forEach { $0.requiresGrad = false }
            seconds.append((forward, both))
        }
        Winograd.largeTiles = true
        row(
            "forward \(label), F(4x4, 3x3) | \(without)", gflops(flops, seconds[0].forward),
            "GFLOP/s",
            String(
                format: "| %.1f: F(4x4) is %.2fx as fast", gflops(flops, seconds[1].forward),
                seconds[1].forward / seconds[0].forward))
        row(
            "  forward + backward (dX, dW)", gflops(3 * flops, seconds[0].both), "GFLOP/s",
            String(
                format: "| %.1f: F(4x4) is %.2fx as fast", gflops(3 * flops, seconds[1].both),
                seconds[1].both / seconds[0].both))
    }
    tileSizes(x.detached(), w.detached(), "32x32")
    let x16 = Tensor.randn([16, 64, 16, 16], key: RandomKey(seed: 9))
    tileSizes(x16, w.detached(), "16x16")
    tileSizes(
        Tensor.randn([16, 64, 8, 8], key: RandomKey(seed: 10)), w.detached(), "8x8",
        without: "im2col")
}

if wanted("attention") {
    // The embedded model's shape (4 heads of 16, self-attention at 16x16 and a 24-token
    // text), a head size of 8, and SD 1.5's first transformer (8 heads of 40, self-attention
    // at 64x64 latents and the 77-token text), one image.
    let shapes = [
        (heads: 4, d: 16, queries: 256, keys: [256, 24], batch: 8),
        (heads: 8, d: 8, queries: 256, keys: [256, 24], batch: 8),
        (heads: 8, d: 40, queries: 4096, keys: [4096, 77], batch: 1),
    ]
    for (heads, d, queries, keyCounts, batch) in shapes {
        print("\n# attention: \(heads) heads of size \(d), \(queries) query tokens, batch \(batch)")
        for keys in keyCounts {
            let name = keys == queries ? "self (\(keys) keys)" : "cross (\(keys) keys)"
            let width = heads * d
            let repeats = queries > 1024 ? 3 : 21  // SD's shape takes seconds a call
            let q = Tensor.randn([batch, queries, width], key: RandomKey(seed: 6))
            let k = Tensor.randn([batch, keys, width], key: RandomKey(seed: 7))
            let v = Tensor.randn([batch, keys, width], key: RandomKey(seed: 8))
            // QK^T and PV: 2 * 2 * Tq * Tk * d per head; the backward pass does twice that.
            let flops =
                4.0 * Double(batch) * Double(heads) * Double(queries) * Double(keys) * Double(d)
            let forward = time(repeats: repeats) {
                _ = GradMode.withNoGrad {
                    scaledDotProductAttention(query: q, key: k, value: v, heads: heads)
                }
            }
            row("\(name) forward", gflops(flops, forward), "GFLOP/s")
            let saved = Parallel.threadCount
            Parallel.threadCount = 1
            let single = time(repeats: repeats) {
                _ = GradMode.withNoGrad {
                    scaledDotProductAttention(query: q, key: k, value: v, heads: heads)
                }
            }
            Parallel.threadCount = saved
            row("\(name) forward, one thread", gflops(flops, single), "GFLOP/s")
            [q, k, v].forEach { $0.requiresGrad = true }
            let dOut = Tensor.randn([batch, queries, width], key: RandomKey(seed: 9))
            let both = time(repeats: repeats) {
                scaledDotProductAttention(query: q, key: k, value: v, heads: heads).backward(dOut)
                [q, k, v].forEach { $0.zeroGrad() }
            }
            row("\(name) forward + backward", gflops(3 * flops, both), "GFLOP/s", "(goal >= 40)")
        }
    }
}

if wanted("pointwise") {
    print(
        "\n# pointwise and normalization passes over 16M floats (bytes read + written), all cores")
    do {
        let n = 1 << 24
        let x = Tensor.randn([16, 64, 128, 128], key: RandomKey(seed: 11))
        let bias = Tensor.randn([64, 1, 1], key: RandomKey(seed: 12))
        let (gamma, beta) = (Tensor.ones([64]), Tensor.zeros([64]))
        let bytes = Double(8 * n)
        let cases: [(String, () -> Tensor)] = [
            ("x + bias (broadcast over channels)", { x + bias }),
            ("silu(x)", { silu(x) }),
            ("gelu(x), exact", { gelu(x) }),
            ("groupNorm(x), 32 groups", { groupNorm(x, groups: 32, weight: gamma, bias: beta) }),
            ("softmax over rows of 128", { softmax(x) }),
        ]
        for (name, op) in cases {
            let seconds = time(repeats: 7) { _ = GradMode.withNoGrad(op) }
            row(name, bytes / seconds / 1e9, "GB/s")
        }
    }
}

if wanted("train") { runTrainingStepBenchmark() }

if wanted("exp") {
    print("\n# why the pointwise kernels are C: exp over 4M floats, one core each")
    let n = 1 << 22
    let x = Tensor.randn([n], key: RandomKey(seed: 10))
    let input = x.scalars
    var output = [Float](repeating: 0, count: n)
    let swiftSeconds = time(repeats: 7) {
        input.withUnsafeBufferPointer { src in
            output.withUnsafeMutableBufferPointer { dst in
                for i in 0..<n {
                    dst[i] = Foundation.exp(Swift.min(Swift.max(src[i], -87.3), 88.3))
                }
            }
        }
    }
    Parallel.threadCount = 1
    let kernelSeconds = time(repeats: 7) { _ = GradMode.withNoGrad { exp(x) } }
    let bytes = Double(8 * n)
    row("Swift loop, Foundation.exp with clamp (1 core)", bytes / swiftSeconds / 1e9, "GB/s")
    row("C kernel duo_exp via exp(Tensor)", bytes / kernelSeconds / 1e9, "GB/s")
}

if wanted("digest") {
    // The identity of a model's weights is their SHA-256 (ModelDigest): an SD 1.x UNet is
    // 3.4 GB, read and hashed each time a run starts.
    print("\n# SHA-256 of a 512 MiB file (FileDigest, read in 4 MiB chunks; page cache warm)")
    let path = FileManager.default.temporaryDirectory.appendingPathComponent(
        "duo-bench-digest-\(ProcessInfo.processInfo.processIdentifier)"
    ).path
    defer { try? FileManager.default.removeItem(atPath: path) }
    let bytes = (0..<(512 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 11) }
    FileManager.default.createFile(atPath: path, contents: Data(bytes))
    let seconds = time(repeats: 3) { _ = try? FileDigest.sha256(ofFile: path) }
    row("FileDigest.sha256(ofFile:)", Double(bytes.count) / seconds / 1e9, "GB/s")
}
