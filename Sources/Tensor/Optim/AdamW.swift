import Foundation
import CKernels

/// AdamW: Adam with decoupled weight decay (Loshchilov & Hutter 2019, Algorithm 2),
/// matching torch.optim.AdamW.
public final class AdamW {
    public struct Options: Sendable {
        public var beta1: Float = 0.9
        public var beta2: Float = 0.999
        public var eps: Float = 1e-8
        public var weightDecay: Float = 1e-2

        public init(
            beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8,
            weightDecay: Float = 1e-2
        ) {
            self.beta1 = beta1
            self.beta2 = beta2
            self.eps = eps
            self.weightDecay = weightDecay
        }
    }

    public let parameters: [Tensor]
    public let options: Options
    /// Steps taken so far (the t of the bias corrections).
    public private(set) var step = 0
    /// First and second moment estimates, one per parameter.
    public private(set) var firstMoments: [Tensor]
    public private(set) var secondMoments: [Tensor]

    public init(parameters: [Tensor], options: Options = Options()) {
        self.parameters = parameters
        self.options = options
        firstMoments = parameters.map { Tensor.zeros($0.shape) }
        secondMoments = parameters.map { Tensor.zeros($0.shape) }
    }

    /// Updates every parameter that has a gradient, with learning rate `lr`.
    public func update(learningRate lr: Float) {
        update(learningRate: lr, gradients: parameters.map { $0.requiresGrad ? $0.grad : nil })
    }

    /// Updates parameter i with `gradients[i]` in place of its own (nil: left alone): for a
    /// gradient made outside the tape, as a straight-through estimator's. With weight decay
    /// 0 and `gradient + λ · parameter` given, this is torch.optim.Adam's coupled L2 decay.
    public func update(learningRate lr: Float, gradients: [Tensor?]) {
        precondition(gradients.count == parameters.count, "one gradient (or nil) per parameter")
        step += 1
        let t = Float(step)
        let bias1 = 1 - Foundation.pow(options.beta1, t)
        let bias2 = 1 - Foundation.pow(options.beta2, t)
        for (i, p) in parameters.enumerated() {
            guard let g = gradients[i] else { continue }
            precondition(g.shape == p.shape, "gradient \(g.shape) for parameter \(p.shape)")
            let (m, v) = (firstMoments[i], secondMoments[i])
            p.storage.generation &+= 1
            Parallel.forEach(p.count, costPerItem: 5) { r in
                let o = r.lowerBound
                duo_adamw_step(
                    p.pointer + o, g.pointer + o, m.pointer + o, v.pointer + o, r.count,
                    lr, options.beta1, options.beta2, options.eps, options.weightDecay,
                    bias1, bias2)
            }
        }
    }

    /// Restores the moments and step count (resuming a run from a checkpoint).
    public func restore(step: Int, firstMoments: [Tensor], secondMoments: [Tensor]) {
        precondition(
            firstMoments.map(\.shape) == parameters.map(\.shape)
                && secondMoments.map(\.shape) == parameters.map(\.shape), "AdamW state shapes")
        self.step = step
        for (dst, src) in zip(self.firstMoments + self.secondMoments, firstMoments + secondMoments)
        {
            dst.assign(src)
        }
    }

    /// Clears every parameter's gradient.
    public func zeroGrad() { parameters.forEach { $0.zeroGrad() } }
}
