import Tensor
import XCTest

/// A checkpointed part gives the same gradients as the part recorded whole, to its inputs
/// and to the trainable leaves it reads (found as it runs), and keeps none of its
/// activations: its output's graph holds the checkpoint node alone.
final class CheckpointTests: XCTestCase {
    func testGradientsEqualThePartRecordedWhole() {
        let key = RandomKey(seed: 3)
        let x = Tensor.randn([4, 6], key: key.fold(in: 0), requiresGrad: true)
        let frozen = Tensor.randn([5, 6], key: key.fold(in: 1))
        let w1 = Tensor.randn([5, 6], key: key.fold(in: 2), requiresGrad: true)
        let w2 = Tensor.randn([3, 5], key: key.fold(in: 3), requiresGrad: true)
        let time = Tensor.randn([4, 5], key: key.fold(in: 4))  // an input needing no gradient
        func part(_ inputs: [Tensor]) -> Tensor {
            let h = silu(linear(inputs[0], weight: frozen + w1) + inputs[1])
            return linear(h * h, weight: w2)
        }
        func loss(_ checkpointed: Bool) -> Tensor {
            let y = checkpointed ? Checkpoint.run([silu(x), time], part) : part([silu(x), time])
            return sum(y * y)
        }
        let whole = loss(false).gradients(for: [x, w1, w2])
        let checkpointedLoss = loss(true)
        XCTAssertEqual(checkpointedLoss.item, loss(false).item)
        let parts = checkpointedLoss.gradients(for: [x, w1, w2])
        for (name, (a, b)) in zip(["x", "w1", "w2"], zip(whole, parts)) {
            XCTAssertNotNil(b, name)
            // The same ops on the same values: the same bits.
            XCTAssertEqual(a?.scalars, b?.scalars, name)
        }
    }

    func testNothingIsCheckpointedWithoutRecording() {
        let w = Tensor([1, 2], shape: [2], requiresGrad: true)
        let y = GradMode.withNoGrad { Checkpoint.run([w]) { silu($0[0]) } }
        XCTAssertFalse(y.requiresGrad)
        let frozen = Tensor([1, 2], shape: [2])
        XCTAssertFalse(Checkpoint.run([frozen]) { silu($0[0]) }.requiresGrad, "nothing to train")
    }
}
