import Foundation
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

    /// Attention over a long sequence inside a checkpointed part is kept from the first run,
    /// not computed again: the part's gradients are those of the part recorded whole (there
    /// with the probabilities kept, here computed again in the backward pass) and two
    /// attentions in one part each get their own output back.
    func testKeptAttentionGivesTheGradientsOfThePartRecordedWhole() {
        let key = RandomKey(seed: 5)
        let x = Tensor.randn([2, 24, 8], key: key.fold(in: 0), requiresGrad: true)
        let w = Tensor.randn([8, 8], key: key.fold(in: 1), requiresGrad: true)
        let context = Tensor.randn([2, 5, 8], key: key.fold(in: 2))
        func part(_ inputs: [Tensor]) -> Tensor {
            let q = linear(inputs[0], weight: w)
            let h = scaledDotProductAttention(query: q, key: inputs[0], value: q, heads: 2)
            let cross = scaledDotProductAttention(
                query: h, key: inputs[1], value: inputs[1], heads: 2)  // 2 * 5 keys < 8: not kept
            return scaledDotProductAttention(query: cross, key: h, value: h * h, heads: 4)
        }
        func loss(_ checkpointed: Bool) -> Tensor {
            let y = checkpointed ? Checkpoint.run([x, context], part) : part([x, context])
            return sum(y * y)
        }
        let whole = loss(false).gradients(for: [x, w])
        let checkpointedLoss = loss(true)
        XCTAssertEqual(checkpointedLoss.item, loss(false).item)
        let parts = checkpointedLoss.gradients(for: [x, w])
        for (name, (a, b)) in zip(["x", "w"], zip(whole, parts)) {
            XCTAssertNotNil(b, name)
            XCTAssertEqual(a?.scalars, b?.scalars, name)
        }
    }

    /// `reusingOutput` computes once per checkpointed part, the part nested in another
    /// included: its first run is inside the outer part's second run, which hands it the
    /// outer part's kept value.
    func testAKeptOutputIsComputedOnce() {
        let x = Tensor([1, 2, 3], shape: [3], requiresGrad: true)
        var calls = 0
        func kept(_ t: Tensor) -> Tensor {
            Checkpoint.reusingOutput {
                calls += 1
                return GradMode.withNoGrad { exp(t) }
            }
        }
        func inner(_ inputs: [Tensor]) -> Tensor { inputs[0] * kept(inputs[0]) }
        func outer(_ inputs: [Tensor]) -> Tensor {
            silu(Checkpoint.run([silu(inputs[0])], inner)) * kept(inputs[0])
        }
        let expected = GradMode.withNoGrad { outer([x]) }.scalars
        calls = 0
        let y = Checkpoint.run([x], outer)
        XCTAssertEqual(y.scalars, expected)
        XCTAssertEqual(calls, 2, "the first run computes each once")
        let gradient = sum(y).gradients(for: [x])[0]
        XCTAssertEqual(calls, 2, "the second runs, outer and inner, compute nothing")
        // Each kept value is a constant of its part: d/dx [silu(s e^s) e^x] with s = silu(x),
        // e^s and e^x held fixed.
        let values = x.scalars.map { v -> Float in
            let sig = 1 / (1 + Foundation.exp(-v)), s = v * sig
            let u = s * Foundation.exp(s), sigU = 1 / (1 + Foundation.exp(-u))
            let dSilu = { (z: Float, sz: Float) in sz * (1 + z * (1 - sz)) }
            return dSilu(u, sigU) * Foundation.exp(s) * dSilu(v, sig) * Foundation.exp(v)
        }
        for (a, b) in zip(gradient?.scalars ?? [], values) {
            XCTAssertEqual(a, b, accuracy: 1e-4 * abs(b))
        }
    }
}
