import Diffusion
import Formats
import Foundation
import Tensor

/// What the world's detector sees in one image.
public struct DetectorPrediction: Hashable, Sendable {
    /// Probability that each concept is present.
    public var scores: [Concept: Float]
    /// The most likely shape of the objects.
    public var shape: Shape
    /// The most likely colour of the objects.
    public var colour: ObjectColour

    public init(scores: [Concept: Float], shape: Shape, colour: ObjectColour) {
        self.scores = scores
        self.shape = shape
        self.colour = colour
    }
}

/// The raw outputs of the detector's heads for a batch.
public struct DetectorLogits {
    /// [B, concepts] presence logits, columns in `Concept.allCases` order.
    public var concepts: Tensor
    /// [B, shapes] class logits, columns in `Shape.allCases` order.
    public var shape: Tensor
    /// [B, colours] class logits, columns in `ObjectColour.allCases` order.
    public var colour: Tensor
}

/// The embedded default's detector: a small CNN on world images with a presence head per
/// concept and shape and colour heads. Its penultimate features are the embedding of the
/// world FID (as Inception's pool features are for FID).
///
/// Four 3x3 convolutions (32x32 at full resolution, so thin stripes survive, two stride-2
/// steps to 8x8, and one more there so each position sees a whole object: three convs see
/// only 7 px, too little to tell a circle from a square), each followed by group norm and
/// SiLU; a global average pool and a linear projection give the features.
public final class WorldDetector: Layer {
    /// Width of the penultimate features.
    public static let featureCount = 128

    let conv1: Conv2d
    let norm1: GroupNorm
    let conv2: Conv2d
    let norm2: GroupNorm
    let conv3: Conv2d
    let norm3: GroupNorm
    let conv4: Conv2d
    let norm4: GroupNorm
    let projection: Linear
    let conceptHead: Linear
    let shapeHead: Linear
    let colourHead: Linear

    /// A detector with PyTorch-style random weights from `key`, or zeros (to be loaded)
    /// when `key` is nil.
    public init(key: RandomKey?) {
        let keys = key.map { $0.split(8).map(Optional.some) } ?? Array(repeating: nil, count: 8)
        conv1 = Conv2d(World.channels, 32, kernel: 3, padding: 1, key: keys[0])
        norm1 = GroupNorm(groups: 8, channels: 32)
        conv2 = Conv2d(32, 64, kernel: 3, stride: 2, padding: 1, key: keys[1])
        norm2 = GroupNorm(groups: 8, channels: 64)
        conv3 = Conv2d(64, 64, kernel: 3, stride: 2, padding: 1, key: keys[2])
        norm3 = GroupNorm(groups: 8, channels: 64)
        conv4 = Conv2d(64, 64, kernel: 3, padding: 1, key: keys[3])
        norm4 = GroupNorm(groups: 8, channels: 64)
        projection = Linear(64, Self.featureCount, key: keys[4])
        conceptHead = Linear(Self.featureCount, Concept.allCases.count, key: keys[5])
        shapeHead = Linear(Self.featureCount, Shape.allCases.count, key: keys[6])
        colourHead = Linear(Self.featureCount, ObjectColour.allCases.count, key: keys[7])
    }

    public var namedParameters: [(String, Tensor)] {
        scoped("conv1", conv1) + scoped("norm1", norm1) + scoped("conv2", conv2)
            + scoped("norm2", norm2) + scoped("conv3", conv3) + scoped("norm3", norm3)
            + scoped("conv4", conv4) + scoped("norm4", norm4)
            + scoped("projection", projection) + scoped("concept_head", conceptHead)
            + scoped("shape_head", shapeHead) + scoped("colour_head", colourHead)
    }

    /// images: [B, 3, 32, 32] in [-1, 1] -> [B, featureCount], the penultimate features.
    public func features(_ images: Tensor) -> Tensor {
        precondition(
            images.rank == 4
                && Array(images.shape.dropFirst()) == [World.channels, World.size, World.size],
            "detector input \(images.shape), expected [B, 3, 32, 32]")
        var x = images
        x = norm1.silu(conv1(x))  // [B, 32, 32, 32]
        x = norm2.silu(conv2(x))  // [B, 64, 16, 16]
        x = norm3.silu(conv3(x))  // [B, 64, 8, 8]
        x = norm4.silu(conv4(x))  // [B, 64, 8, 8]: receptive field 15 px, a whole object
        x = mean(x, axes: [2, 3])  // global average pool: [B, 64]
        return silu(projection(x))
    }

    /// images: [B, 3, 32, 32] -> the logits of every head.
    public func logits(_ images: Tensor) -> DetectorLogits {
        let h = features(images)
        return DetectorLogits(concepts: conceptHead(h), shape: shapeHead(h), colour: colourHead(h))
    }

    /// Presence probabilities and the most likely shape and colour of each image.
    public func predict(_ images: Tensor) -> [DetectorPrediction] {
        let out = GradMode.withNoGrad { logits(images) }
        let batch = images.shape[0]
        let (concepts, shapes, colours) = (
            out.concepts.scalars, out.shape.scalars, out.colour.scalars
        )
        let (nc, ns, nk) = (
            Concept.allCases.count, Shape.allCases.count, ObjectColour.allCases.count
        )
        return (0..<batch).map { b in
            var scores: [Concept: Float] = [:]
            for (j, concept) in Concept.allCases.enumerated() {
                scores[concept] = 1 / (1 + Foundation.exp(-concepts[b * nc + j]))
            }
            return DetectorPrediction(
                scores: scores,
                shape: Shape.allCases[argmax(shapes[(b * ns)..<((b + 1) * ns)])],
                colour: ObjectColour.allCases[argmax(colours[(b * nk)..<((b + 1) * nk)])])
        }
    }

    /// Predictions for world images given as [3, 32, 32] float arrays, in batches.
    public func predict(images: [[Float]], batchSize: Int = 256) -> [DetectorPrediction] {
        stride(from: 0, to: images.count, by: batchSize).flatMap { start in
            let chunk = images[start..<min(images.count, start + batchSize)]
            return predict(Self.stack(Array(chunk)))
        }
    }

    /// Stacks [3, 32, 32] float images into a [B, 3, 32, 32] tensor.
    public static func stack(_ images: [[Float]]) -> Tensor {
        let size = World.channels * World.size * World.size
        precondition(images.allSatisfy { $0.count == size }, "images must be [3, 32, 32]")
        return Tensor(
            images.flatMap { $0 }, shape: [images.count, World.channels, World.size, World.size])
    }
}

/// The index of the largest value (the first one on ties).
private func argmax(_ values: ArraySlice<Float>) -> Int {
    var best = values.startIndex
    for i in values.indices where values[i] > values[best] { best = i }
    return best - values.startIndex
}
