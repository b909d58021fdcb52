import Tensor
import XCTest

/// The float64 solve behind UCE's closed form: Cholesky and X A = B, against values
/// worked by hand and against the residual on a random system.
final class Matrix64Tests: XCTestCase {
    func testCholeskyOfAHandWorkedMatrix() throws {
        // [[4, 2], [2, 3]] = L Lᵀ with L = [[2, 0], [1, √2]].
        let a = Matrix64(rows: 2, columns: 2, scalars: [4, 2, 2, 3])
        let l = try a.cholesky()
        XCTAssertEqual(l.scalars[0], 2)
        XCTAssertEqual(l.scalars[1], 0)
        XCTAssertEqual(l.scalars[2], 1)
        XCTAssertEqual(l.scalars[3], 2.0.squareRoot(), accuracy: 1e-15)
        // X A = B for B = [1, 0]: X = [3, -2] / 8 (A⁻¹'s first row).
        let x = Matrix64(rows: 1, columns: 2, scalars: [1, 0]).solvingRight(cholesky: l)
        XCTAssertEqual(x.scalars[0], 3.0 / 8, accuracy: 1e-15)
        XCTAssertEqual(x.scalars[1], -2.0 / 8, accuracy: 1e-15)
    }

    func testSolvingARandomSystemLeavesATinyResidual() throws {
        let n = 37
        let m = Matrix64(Tensor.randn([n, n], key: RandomKey(seed: 1)))
        // λ I + M Mᵀ, as UCE's right-hand matrix is built.
        let a = Matrix64.identity(n, scale: 0.5).adding(.product(m, m, transposeB: true))
        let b = Matrix64(Tensor.randn([5, n], key: RandomKey(seed: 2)))
        let x = b.solvingRight(cholesky: try a.cholesky())
        let residual = Matrix64.product(x, a).adding(b, scaled: -1).frobeniusNorm
        XCTAssertLessThan(residual / b.frobeniusNorm, 1e-12)
    }

    func testAMatrixThatIsNotPositiveDefiniteIsRefused() {
        let a = Matrix64(rows: 2, columns: 2, scalars: [1, 2, 2, 1])
        XCTAssertThrowsError(try a.cholesky()) { error in
            XCTAssertEqual((error as? NotPositiveDefinite)?.pivot, 1)
        }
    }
}
