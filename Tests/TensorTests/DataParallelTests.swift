import Tensor
import TestSupport
import XCTest

final class DataParallelTests: XCTestCase {
    /// A batch's mean loss as shards, each weighted by its share of the rows.
    func shardedGradients(_ x: Tensor, _ w: Tensor, shards: [Range<Int>]) -> (Tensor, [Float]) {
        let n = Float(x.shape[0])
        let losses = DataParallel.backward(shards: shards.count, parameters: [w]) { i in
            let rows = split(
                x,
                sizes: [shards[i].lowerBound, shards[i].count, x.shape[0] - shards[i].upperBound]
                    .filter { $0 > 0 }, axis: 0)[shards[i].lowerBound > 0 ? 1 : 0]
            let loss = mean(silu(matmul(rows, w)), axes: [0, 1]) * (Float(shards[i].count) / n)
            return (loss, loss.item)
        }
        defer { w.zeroGrad() }
        return (w.grad!.copy(), losses)
    }

    func testShardsGradientsSumToTheWholeBatchs() {
        let x = Tensor.randn([6, 5], key: RandomKey(seed: 1))
        let w = Tensor.randn([5, 4], key: RandomKey(seed: 2), requiresGrad: true)
        mean(silu(matmul(x, w)), axes: [0, 1]).backward()
        let whole = w.grad!.copy()
        w.zeroGrad()
        let (sharded, losses) = shardedGradients(x, w, shards: [0..<2, 2..<6])
        // The shards sum 2 and 4 rows where the whole batch sums 6: any order of 6 terms
        // lands within 3ε of their absolute sum, well inside assertClose's defaults here.
        assertClose(sharded.scalars, whole.scalars)
        XCTAssertEqual(losses.count, 2, "one result per shard")
        // The same [2, 5] x [5, 4] GEMM as shard 0's; only the weight (2/6 there, /3 here) rounds apart.
        let first = GradMode.withNoGrad {
            mean(silu(matmul(split(x, sizes: [2, 4], axis: 0)[0], w)), axes: [0, 1]).item
        }
        XCTAssertEqual(
            losses[0], first / 3, accuracy: 2 * Float.ulpOfOne * abs(first),
            "results come back in shard order")
    }

    func testGradientsAreTheSameWhateverTheThreadCount() {
        let x = Tensor.randn([64, 48], key: RandomKey(seed: 3))
        let w = Tensor.randn([48, 40], key: RandomKey(seed: 4), requiresGrad: true)
        let saved = Parallel.threadCount
        defer { Parallel.threadCount = saved }
        Parallel.threadCount = 1
        let one = shardedGradients(x, w, shards: [0..<20, 20..<64]).0.scalars
        Parallel.threadCount = 2
        let two = shardedGradients(x, w, shards: [0..<20, 20..<64]).0.scalars
        // Exact: with one thread or two, each shard runs its GEMMs whole ([20, 48] and
        // [44, 48] by [48, 40]; a shard's ops split again only with four threads or more),
        // so the two runs make the same calls on the same shapes.
        XCTAssertEqual(one, two, "shards summed in shard order, bit for bit")
    }
}
