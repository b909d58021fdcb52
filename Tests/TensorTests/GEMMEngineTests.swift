import Foundation
@testable import Tensor
import XCTest

/// `BLAS.gemm` on each float32 engine (oneDNN's sgemm where libdnnl is installed, and
/// OpenBLAS's) against a float64 product, within float32 accumulation's bound: k + 1 units
/// in the last place of the sum of |alpha a b| over k, plus one of |beta c|.
final class GEMMEngineTests: XCTestCase {
    /// The engines this machine has: OpenBLAS always, oneDNN where libdnnl opens.
    var engines: [BLAS.Engine] {
        let saved = BLAS.engine
        defer { BLAS.engine = saved }
        BLAS.engine = .oneDNN
        return BLAS.activeEngine == .oneDNN ? [.oneDNN, .openBLAS] : [.openBLAS]
    }

    func testEveryLayoutMatchesAFloat64ProductOnEachEngine() {
        // Odd sizes (edges of every kernel's register block), a long k, a single row and
        // column, and the model's Winograd and linear-layer shapes.
        let shapes = [
            (1, 1, 1), (3, 1024, 27), (13, 33, 257), (64, 40, 64), (32, 640, 32), (7, 5, 1030),
            (300, 64, 64),
        ]
        var key = RandomKey(seed: 11)
        for engine in engines {
            for (m, n, k) in shapes {
                for (transA, transB) in [
                    (false, false), (true, false), (false, true), (true, true),
                ] {
                    for (alpha, beta): (Float, Float) in [(1, 0), (0.5, -1.5)] {
                        key = key.fold(in: 1)
                        check(engine, m, n, k, transA, transB, alpha, beta, pad: 3, key)
                    }
                }
            }
        }
    }

    func testStridesLeftToOpenBLASGiveTheSameProducts() {
        // Row strides of 512 and 1024 floats, which `oneDNNReadsWell` sends to OpenBLAS: the
        // rule picks an engine, it never changes what is computed.
        XCTAssertFalse(BLAS.oneDNNReadsWell(transA: false, transB: false, lda: 64, ldb: 1024))
        XCTAssertFalse(BLAS.oneDNNReadsWell(transA: true, transB: true, lda: 512, ldb: 64))
        XCTAssertTrue(BLAS.oneDNNReadsWell(transA: false, transB: true, lda: 1024, ldb: 1024))
        var key = RandomKey(seed: 12)
        for engine in engines {
            for (transA, transB) in [(false, false), (true, false)] {
                key = key.fold(in: 1)
                // lda = m + pad for transposed A, ldb = n + pad for B as it is.
                check(engine, 512, 512 - 8, 40, transA, transB, 1, 0, pad: 8, key)
            }
        }
    }

    func testPaddedRowStridesAreOnesOneDNNReadsWell() {
        // Buffers laid out for GEMMs (Winograd's tiles, im2col's columns) take these strides
        // so that their GEMMs stay on oneDNN; the padding must leave every row whole.
        for columns in [1, 27, 64, 100, 128, 256, 512, 1000, 1024, 2048, 4096, 16384] {
            let stride = BLAS.paddedRowStride(columns)
            XCTAssertGreaterThanOrEqual(stride, columns, "\(columns) columns")
            XCTAssertLessThanOrEqual(stride, columns + 16, "\(columns) columns")
            XCTAssertTrue(
                BLAS.oneDNNReadsWell(transA: false, transB: false, lda: 64, ldb: stride),
                "\(columns) columns in rows of \(stride)")
        }
    }

    func testTheEngineIsOneDNNWhereLibdnnlIsInstalled() throws {
        let installed = [
            "/usr/lib/x86_64-linux-gnu/libdnnl.so.2", "/usr/lib/aarch64-linux-gnu/libdnnl.so.2",
        ]
        .contains(where: FileManager.default.fileExists)
        try XCTSkipUnless(installed, "libdnnl.so.2 is not installed here")
        XCTAssertEqual(engines, [.oneDNN, .openBLAS])
    }

    func testOpeningOneDNNLeavesTheEnvironmentAsItWas() throws {
        // onednn.c sets OMP_WAIT_POLICY for libgomp as it loads; the processes duo starts
        // (duo-bench's PyTorch peers, external detectors) must not inherit it.
        try XCTSkipIf(getenv("OMP_WAIT_POLICY") != nil, "OMP_WAIT_POLICY is set by the caller")
        _ = engines
        XCTAssertNil(getenv("OMP_WAIT_POLICY"))
    }

    func check(
        _ engine: BLAS.Engine, _ m: Int, _ n: Int, _ k: Int, _ transA: Bool, _ transB: Bool,
        _ alpha: Float, _ beta: Float, pad: Int, _ key: RandomKey
    ) {
        // Leading dimensions past the rows' widths, as a view into a larger matrix has.
        let (lda, ldb, ldc) = ((transA ? m : k) + pad, (transB ? k : n) + pad, n + 1)
        let a = key.uniform(count: (transA ? k : m) * lda).map { 2 * $0 - 1 }
        let b = key.fold(in: 2).uniform(count: (transB ? n : k) * ldb).map { 2 * $0 - 1 }
        let c0 = key.fold(in: 3).uniform(count: m * ldc).map { 2 * $0 - 1 }
        func opA(_ i: Int, _ p: Int) -> Float { transA ? a[p * lda + i] : a[i * lda + p] }
        func opB(_ p: Int, _ j: Int) -> Float { transB ? b[j * ldb + p] : b[p * ldb + j] }
        var c = c0
        let saved = BLAS.engine
        BLAS.engine = engine
        BLAS.gemm(
            transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b,
            ldb: ldb, beta: beta, c: &c, ldc: ldc)
        BLAS.engine = saved
        var worst = 0.0
        for i in 0..<m {
            for j in 0..<n {
                var exact = 0.0
                var magnitude = 0.0
                for p in 0..<k {
                    let term = Double(alpha) * Double(opA(i, p)) * Double(opB(p, j))
                    exact += term
                    magnitude += abs(term)
                }
                let prior = Double(beta) * Double(c0[i * ldc + j])
                let bound = Double(k + 1) * 0x1p-24 * magnitude + 0x1p-23 * abs(prior)
                worst = max(worst, abs(Double(c[i * ldc + j]) - (exact + prior)) / bound)
            }
        }
        XCTAssertLessThanOrEqual(
            worst, 1,
            "\(engine) m \(m) n \(n) k \(k) transA \(transA) transB \(transB) beta \(beta)")
    }
}
