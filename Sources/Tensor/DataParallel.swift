/// Data parallelism for a training step: the batch cut into shards whose losses run
/// forward and backward at the same time, one shard per thread, with the parameters
/// shared and their gradients summed in shard order.
///
/// On two cores this beats splitting each op: a UNet at 8x8-32x32 pixels and 32-64
/// channels runs hundreds of ops too small to split well (BENCHMARKS.md, "Data-parallel
/// shards"). The shard count is the caller's, not the thread count's: on one core the
/// shards run one after the other and give the numbers two cores give. (With four or
/// more threads each shard's ops split again, and sums split over threads, such as a
/// convolution's weight gradient, round differently.)
public enum DataParallel {
    /// The shards a batch is cut into by the trainer, sampling and the white-box attacks:
    /// one per core of the two-core machines this tool is sized for.
    public static let shardCount = 2

    /// `count` items cut into `shards` contiguous ranges of (nearly) equal size; fewer
    /// where there are fewer items than shards.
    public static func shardRanges(_ count: Int, shards: Int) -> [Range<Int>] {
        let parts = min(shards, count)
        return (0..<parts).map { count * $0 / parts..<count * ($0 + 1) / parts }
    }

    /// Whether `map(shards:)` would run `shards` shards on threads of their own: false
    /// inside a shard, whose work already keeps every core busy, and on one core.
    public static func threadsAreFree(for shards: Int) -> Bool {
        Parallel.partCount(shards, costPerItem: Parallel.minimumWork) == shards
    }

    /// `body(i)` for i in 0..<shards, one shard per thread, in shard order: work without
    /// gradients (sampling) whose shards are independent.
    public static func map<Result>(shards: Int, _ body: (Int) -> Result) -> [Result] {
        let results = UnsafeMutableBufferPointer<Result?>.allocate(capacity: shards)
        results.initialize(repeating: nil)
        defer {
            results.deinitialize()
            results.deallocate()
        }
        Parallel.forEach(shards, costPerItem: Parallel.minimumWork) { range in
            for i in range { results[i] = body(i) }
        }
        return results.map { $0! }
    }

    /// Runs `shard(i)` for i in 0..<shards, each returning a loss (a scalar with a graph to
    /// `parameters`) and a result, and accumulates the gradient of every loss into the
    /// parameters' `grad`, shard 0 first. Returns the results in shard order.
    public static func backward<Result>(
        shards: Int, parameters: [Tensor], _ shard: (Int) -> (loss: Tensor, result: Result)
    ) -> [Result] {
        let outcomes = map(shards: shards) { i -> (gradients: [Tensor?], result: Result) in
            let (loss, result) = shard(i)
            return (loss.gradients(for: parameters), result)
        }
        for outcome in outcomes {
            for (parameter, gradient) in zip(parameters, outcome.gradients) {
                if let gradient { parameter.accumulateGrad(gradient) }
            }
        }
        return outcomes.map(\.result)
    }
}
