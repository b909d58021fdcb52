import Tensor

/// The detector's training objective, written with the core's differentiable ops.
public enum DetectorLoss {
    /// The three terms of the loss and their sum, for a batch.
    public struct Terms {
        /// Binary cross-entropy of the presence heads, averaged over images and concepts.
        public var concepts: Tensor
        /// Softmax cross-entropy of the shape head, averaged over images.
        public var shape: Tensor
        /// Softmax cross-entropy of the colour head, averaged over images.
        public var colour: Tensor
        /// concepts + shape + colour: the scalar to minimize.
        public var total: Tensor { concepts + shape + colour }
    }

    /// The loss of `detector` on `images` ([B, 3, 32, 32]) with their ground truth.
    public static func loss(
        _ detector: WorldDetector, images: Tensor, labels: [SceneLabels]
    ) -> Terms {
        precondition(images.shape[0] == labels.count, "\(labels.count) labels for \(images.shape)")
        let out = detector.logits(images)
        let presence = labels.flatMap { label in
            Concept.allCases.map { label.has($0) ? Float(1) : 0 }
        }
        let targets = Tensor(presence, shape: [labels.count, Concept.allCases.count])
        return Terms(
            concepts: binaryCrossEntropy(logits: out.concepts, targets: targets),
            shape: crossEntropy(
                logits: out.shape,
                classes: labels.map { Shape.allCases.firstIndex(of: $0.shape)! }),
            colour: crossEntropy(
                logits: out.colour,
                classes: labels.map { ObjectColour.allCases.firstIndex(of: $0.colour)! }))
    }

    /// Mean of -[y log σ(z) + (1 - y) log σ(-z)] over all elements; logits and targets
    /// (0 or 1, or any value in [0, 1]) of the same shape. logSigmoid keeps it finite for
    /// confident logits, where log(sigmoid(z)) would underflow to log 0.
    public static func binaryCrossEntropy(logits z: Tensor, targets y: Tensor) -> Tensor {
        precondition(z.shape == y.shape, "logits \(z.shape) vs targets \(y.shape)")
        let positive = y * logSigmoid(z)
        let negative = (1 - y) * logSigmoid(-z)
        return -mean(positive + negative)
    }

    /// Mean over rows of -log softmax(z)[class]: logits [B, K], one class index per row.
    ///
    /// -log softmax(z)_c = logsumexp(z) - z_c. The core has no log, so logsumexp is folded
    /// over the columns with logaddexp(a, b) = a + softplus(b - a), which is exact and, as
    /// softplus is stable, never overflows.
    public static func crossEntropy(logits z: Tensor, classes: [Int]) -> Tensor {
        precondition(
            z.rank == 2 && z.shape[0] == classes.count,
            "logits \(z.shape), \(classes.count) classes")
        let (batch, k) = (z.shape[0], z.shape[1])
        precondition(classes.allSatisfy { (0..<k).contains($0) }, "class index out of 0..<\(k)")
        let columns = split(z, sizes: Array(repeating: 1, count: k), axis: 1)  // k x [B, 1]
        var logSumExp = columns[0]
        for column in columns.dropFirst() { logSumExp = logSumExp + softplus(column - logSumExp) }
        var oneHot = [Float](repeating: 0, count: batch * k)
        for (row, c) in classes.enumerated() { oneHot[row * k + c] = 1 }
        let picked = sum(z * Tensor(oneHot, shape: [batch, k]), axes: [1], keepDims: true)
        return mean(logSumExp - picked)
    }
}

extension Float {
    fileprivate static func - (a: Float, b: Tensor) -> Tensor { affine(b, scale: -1, shift: a) }
}
