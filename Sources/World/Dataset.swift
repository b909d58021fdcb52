import Tensor

/// One sample of a world data set.
public struct WorldSample: Sendable {
    /// Its index in the data set: with the seed, all it depends on.
    public var index: Int
    public var scene: SceneSpec
    public var caption: String
    /// [3, 32, 32] channel-major, in [-1, 1].
    public var image: [Float]

    /// Ground truth for detectors.
    public var labels: SceneLabels { scene.labels }
}

/// A batch ready for training: images stacked into one tensor.
public struct WorldBatch {
    /// [B, 3, 32, 32] in [-1, 1].
    public var images: Tensor
    public var captions: [String]
    public var scenes: [SceneSpec]
}

extension World {
    /// Samples `indices` of the data set with `seed`, each with its scene, caption and
    /// image. Sample i is the same whatever range it is drawn in.
    public func samples(
        _ indices: Range<Int>, seed: UInt64,
        stripes: ConceptChoice = .random, splatter: ConceptChoice = .random
    ) -> [WorldSample] {
        let scenes = indices.map {
            scene(key: World.key(seed: seed, index: $0), stripes: stripes, splatter: splatter)
        }
        let pixels = renderAll(scenes)
        let stride = World.channels * World.size * World.size
        return scenes.enumerated().map { i, scene in
            WorldSample(
                index: indices.lowerBound + i, scene: scene, caption: caption(scene),
                image: Array(pixels[(i * stride)..<((i + 1) * stride)]))
        }
    }

    /// The first `count` samples of the data set with `seed`.
    public func sample(count: Int, seed: UInt64) -> [WorldSample] {
        samples(0..<count, seed: seed)
    }

    /// Samples `indices` as a training batch.
    public func batch(_ indices: Range<Int>, seed: UInt64) -> WorldBatch {
        let scenes = indices.map { scene(key: World.key(seed: seed, index: $0)) }
        let images = Tensor(
            renderAll(scenes), shape: [scenes.count, World.channels, World.size, World.size])
        return WorldBatch(images: images, captions: scenes.map(caption), scenes: scenes)
    }

    /// Renders `scenes` one after another into one buffer, spread over the cores.
    public func renderAll(_ scenes: [SceneSpec]) -> [Float] {
        let stride = World.channels * World.size * World.size
        var pixels = [Float](repeating: 0, count: scenes.count * stride)
        pixels.withUnsafeMutableBufferPointer { buffer in
            let base = buffer.baseAddress!
            Parallel.forEach(scenes.count, costPerItem: 20 * stride) { range in
                for i in range {
                    let out = UnsafeMutableBufferPointer(start: base + i * stride, count: stride)
                    Rasterizer.render(scenes[i], into: out)
                }
            }
        }
        return pixels
    }
}
