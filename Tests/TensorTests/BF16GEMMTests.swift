import Foundation
import Formats
import Tensor
import XCTest

/// The mixed-precision GEMM against PyTorch's bfloat16 rounding and a float64 product of
/// the rounded operands, within float32 accumulation's bound (sum over k of |a||b|, k units
/// in the last place), on both the AVX512-BF16 tile (where the CPU has it) and the portable one.
final class BF16GEMMTests: XCTestCase {
    func fixture() throws -> SafeTensorsReader {
        let url = try XCTUnwrap(
            Bundle.module.url(forResource: "Fixtures/bf16", withExtension: "safetensors"))
        return try SafeTensorsReader(path: url.path)
    }

    /// The tiles this CPU runs: the portable one everywhere, the native one where present.
    var tiles: [Bool] { BF16GEMM.isNative ? [true, false] : [true] }

    func testRoundingIsPyTorchsBitForBit() throws {
        let file = try fixture()
        let values = try file.floats("values")
        let expected = try file.floats("values_bf16")
        XCTAssertEqual(values.count, expected.count)
        for (x, want) in zip(values, expected) {
            let got = BF16GEMM.rounded(x)
            if want.isNaN {
                XCTAssertTrue(got.isNaN, "\(x.bitPattern)")
            } else {
                XCTAssertEqual(
                    got.bitPattern, want.bitPattern,
                    "float bits \(String(x.bitPattern, radix: 16)) -> \(got) want \(want)")
            }
        }
    }

    func testTheProductIsPyTorchsRoundedOperandsProduct() throws {
        let file = try fixture()
        let (a, b) = (try file.floats("a"), try file.floats("b"))
        let (want, bound) = (try file.floats("c"), try file.floats("bound"))
        let (m, k, n) = (13, 301, 35)
        for portable in tiles {
            var c = [Float](repeating: .nan, count: m * n)
            BF16GEMM.gemm(
                m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: &c, ldc: n, portable: portable)
            for i in 0..<(m * n) {
                // The fixture's float64 product was rounded once to float32: one more unit.
                let tolerance = Float(k + 2) * 0x1p-24 * bound[i]
                XCTAssertLessThanOrEqual(
                    abs(c[i] - want[i]), tolerance, "element \(i), portable \(portable)")
            }
        }
    }

    func testEveryLayoutAndEdgeMatchesAFloat64Product() {
        // Edges of the 12 x 32 tile, of the 512-deep slice (odd k), of the 192-row A block
        // and of the 2048-column B slice; one case of each transposition pair.
        let shapes = [
            (1, 1, 1), (12, 32, 256), (13, 33, 257), (25, 70, 513), (193, 2049, 5), (7, 5, 600),
        ]
        var key = RandomKey(seed: 7)
        for (m, n, k) in shapes {
            for (transA, transB) in [(false, false), (true, false), (false, true), (true, true)] {
                for (alpha, beta): (Float, Float) in [(1, 0), (0.5, -1.5)] {
                    key = key.fold(in: 1)
                    check(m, n, k, transA, transB, alpha, beta, key)
                }
            }
        }
    }

    func check(
        _ m: Int, _ n: Int, _ k: Int, _ transA: Bool, _ transB: Bool, _ alpha: Float,
        _ beta: Float, _ key: RandomKey
    ) {
        // Leading dimensions past the rows' widths, as a view into a larger matrix has.
        let (lda, ldb, ldc) = ((transA ? m : k) + 3, (transB ? k : n) + 2, n + 1)
        let a = key.uniform(count: (transA ? k : m) * lda).map { 2 * $0 - 1 }
        let b = key.fold(in: 2).uniform(count: (transB ? n : k) * ldb).map { 2 * $0 - 1 }
        let c0 = key.fold(in: 3).uniform(count: m * ldc).map { 2 * $0 - 1 }
        func opA(_ i: Int, _ p: Int) -> Double {
            Double(BF16GEMM.rounded(transA ? a[p * lda + i] : a[i * lda + p]))
        }
        func opB(_ p: Int, _ j: Int) -> Double {
            Double(BF16GEMM.rounded(transB ? b[j * ldb + p] : b[p * ldb + j]))
        }
        for portable in tiles {
            // With beta 0, C is not read: NaN there must not reach the result.
            var c = beta == 0 ? [Float](repeating: .nan, count: m * ldc) : c0
            BF16GEMM.gemm(
                transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                b: b, ldb: ldb, beta: beta, c: &c, ldc: ldc, portable: portable)
            var worst = 0.0
            for i in 0..<m {
                for j in 0..<n {
                    var sum = 0.0
                    var magnitude = 0.0
                    for p in 0..<k {
                        sum += opA(i, p) * opB(p, j)
                        magnitude += abs(opA(i, p) * opB(p, j))
                    }
                    let prior = beta == 0 ? 0 : Double(beta) * Double(c0[i * ldc + j])
                    let want = Double(alpha) * sum + prior
                    let bound =
                        Double(k + 3) * 0x1p-24 * (Double(abs(alpha)) * magnitude + abs(prior))
                    worst = max(worst, abs(Double(c[i * ldc + j]) - want) / bound)
                }
                let pad = c[i * ldc + n]  // past the row's n columns: left as it was
                XCTAssertTrue(beta == 0 ? pad.isNaN : pad == c0[i * ldc + n], "row \(i)'s padding")
            }
            XCTAssertLessThanOrEqual(
                worst, 1,
                "m \(m) n \(n) k \(k) transA \(transA) transB \(transB) alpha \(alpha) beta \(beta) portable \(portable)"
            )
        }
    }
}
