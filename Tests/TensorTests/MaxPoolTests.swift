import Tensor
import TestSupport
import XCTest

/// 2x2 max pooling against its definition (torch.nn.MaxPool2d(2): floor mode, first
/// largest wins, NaN propagates) and its gradient against finite differences.
final class MaxPoolTests: XCTestCase {
    func testTakesEachWindowsLargestAndDropsAnOddEdge() {
        // One 3x5 plane: the last row and column have no full window.
        let x = Tensor(
            [
                1, 9, 2, 3, 50,
                4, 5, 8, 7, 50,
                60, 60, 60, 60, 60,
            ], shape: [1, 1, 3, 5])
        let y = maxPool2x2(x)
        XCTAssertEqual(y.shape, [1, 1, 1, 2])
        XCTAssertEqual(y.scalars, [9, 8])

        let nan = maxPool2x2(Tensor([1, .nan, 3, 2], shape: [1, 1, 2, 2]))
        XCTAssertTrue(nan.scalars[0].isNaN, "a NaN in the window wins, as in torch")
    }

    func testPlanesAreIndependent() {
        // [2, 2, 2, 2]: each of the four planes holds k, k + 1, k + 2, k + 3 in some order.
        let values: [Float] = [3, 0, 1, 2, 4, 7, 6, 5, 10, 9, 8, 11, 12, 13, 15, 14]
        XCTAssertEqual(maxPool2x2(Tensor(values, shape: [2, 2, 2, 2])).scalars, [3, 7, 11, 15])
    }

    func testGradientGoesToEachWindowsWinner() {
        // Random values have no ties, so the winner holds under the finite differences' step
        // when the gaps exceed it: spread them out.
        let x = Tensor(
            (0..<(2 * 3 * 6 * 4)).map { Float(($0 * 37) % 97) * 0.1 }, shape: [2, 3, 6, 4])
        checkGradients([x], eps: 1e-3, "maxPool2x2") { maxPool2x2($0[0]) }
        let dX = x.grad!.scalars
        XCTAssertEqual(dX.filter { $0 != 0 }.count, 2 * 3 * 3 * 2, "one winner per window")
    }
}
