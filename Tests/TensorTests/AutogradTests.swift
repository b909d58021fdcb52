import Tensor
import TestSupport
import XCTest

final class AutogradTests: XCTestCase {
    func testNoGradRecordsNothing() {
        let w = Tensor([1, 2, 3], shape: [3], requiresGrad: true)
        let y = GradMode.withNoGrad { silu(w * w) }
        XCTAssertFalse(y.requiresGrad, "no graph under withNoGrad")
        XCTAssertTrue(GradMode.isEnabled, "mode restored")
        XCTAssertTrue(silu(w * w).requiresGrad)
    }

    func testNoGradHoldsOnTheCallingThreadOnly() {
        // A shard's reference pass under withNoGrad must not stop another shard recording.
        let w = Tensor([1, 2, 3], shape: [3], requiresGrad: true)
        let recordedElsewhere = GradMode.withNoGrad { onAnotherThread { (w * w).requiresGrad } }
        XCTAssertTrue(recordedElsewhere)
        XCTAssertFalse(onAnotherThread { GradMode.withNoGrad { (w * w).requiresGrad } })
    }

    func testASplitStartedWithoutGradientsRecordsNothingOnItsWorkers() throws {
        let w = Tensor([1, 2, 3], shape: [3], requiresGrad: true)
        let recorded = try GradMode.withNoGrad { try valuesOnSplitWorkers { (w * w).requiresGrad } }
        XCTAssertEqual(recorded, [false])
        let recordedWithGradients = try valuesOnSplitWorkers { (w * w).requiresGrad }
        XCTAssertEqual(recordedWithGradients, [true])
    }

    func testGradientsForLeavesEqualBackwardsAndLeaveGradUntouched() {
        let a = Tensor([0.5, -1.5, 2], shape: [3], requiresGrad: true)
        let b = Tensor([3, 1, -2], shape: [3], requiresGrad: true)
        func loss() -> Tensor { sum(silu(a * b) + a * a) }
        let gradients = loss().gradients(for: [b, a])
        XCTAssertNil(a.grad)
        XCTAssertNil(b.grad)
        loss().backward()
        XCTAssertEqual(gradients[0]?.scalars, b.grad?.scalars)
        XCTAssertEqual(gradients[1]?.scalars, a.grad?.scalars)
        let unused = Tensor([1], shape: [1], requiresGrad: true)
        XCTAssertNil(loss().gradients(for: [unused])[0], "no path, no gradient")
    }

    func testGradientsAccumulateAcrossBackwardCalls() {
        let w = Tensor([1, -2], shape: [2], requiresGrad: true)
        sum(w * w).backward()
        sum(w * w).backward()
        XCTAssertEqual(w.grad?.scalars, [4, -8])  // 2 * (2 w)
        w.zeroGrad()
        XCTAssertNil(w.grad)
    }

    func testLeafGradientsDoNotShareMemory() {
        // add hands the same dY to both inputs; clipping one must not change the other.
        let a = Tensor([1], shape: [1], requiresGrad: true)
        let b = Tensor([2], shape: [1], requiresGrad: true)
        (a + b).backward()
        _ = clipGradNorm([a], maxNorm: 0.5)
        XCTAssertEqual(b.grad?.scalars, [1])
    }

    func testInputUsedOnSeveralPathsGetsTheSumOfGradients() {
        let x = Tensor([3], shape: [1], requiresGrad: true)
        let y = x * x + silu(x) * 0 + x  // d/dx = 2x + 1
        y.backward()
        XCTAssertEqual(x.grad!.item, 7, accuracy: 1e-6)
    }
}
