import XCTest

@testable import Tensor

/// A frozen kernel's Winograd transform is kept with its memory while all kept transforms
/// fit `Storage.derivedBudgetBytes`, made again for each call past it, and uncounted when
/// the kernel is written or freed; kept or not, the convolution is the same.
final class KeptTransformTests: XCTestCase {
    func testTransformsPastTheBudgetAreMadePerCallWithTheSameResult() {
        let key = RandomKey(seed: 11)
        let x = Tensor.randn([2, 16, 16, 16], key: key.fold(in: 0))  // F(4x4, 3x3) tiles
        var weight: Tensor? = Tensor.randn([16, 16, 3, 3], key: key.fold(in: 1))
        let budget = Storage.derivedBudgetBytes
        defer { Storage.derivedBudgetBytes = budget }
        let before = Storage.keptDerivedBytes
        let transformBytes = 36 * 16 * 16 * MemoryLayout<Float>.stride

        Storage.derivedBudgetBytes = before + transformBytes - 1
        let made = conv2d(x, weight: weight!, padding: 1)
        XCTAssertEqual(Storage.keptDerivedBytes, before, "a byte over the budget: not kept")

        Storage.derivedBudgetBytes = before + transformBytes
        let kept = conv2d(x, weight: weight!, padding: 1)
        XCTAssertEqual(Storage.keptDerivedBytes, before + transformBytes)
        XCTAssertEqual(made.scalars, kept.scalars)
        XCTAssertEqual(conv2d(x, weight: weight!, padding: 1).scalars, kept.scalars, "reused")

        weight!.withUnsafeMutableBufferPointer { $0[0] += 1 }  // the kept transform is stale
        let changed = conv2d(x, weight: weight!, padding: 1)
        XCTAssertNotEqual(changed.scalars, kept.scalars)
        XCTAssertEqual(Storage.keptDerivedBytes, before + transformBytes, "dropped, then kept anew")
        weight = nil
        XCTAssertEqual(Storage.keptDerivedBytes, before, "freed with the kernel")
    }
}
