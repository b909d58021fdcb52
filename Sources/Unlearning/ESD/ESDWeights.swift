import Diffusion
import Tensor

/// What ESD trains, and how the frozen original is had back for the reference predictions
/// ε(x_t, ∅) and ε(x_t, c): a subset of the UNet's own weights at full rank, as the
/// reference trains them, or LoRA adapters (switched off for the original).
public protocol ESDWeights: AnyObject {
    /// The trained tensors under their keys (diffusers' UNet keys, or peft's LoRA keys).
    var namedParameters: [(String, Tensor)] { get }

    /// Runs `body` with the UNet computing the original model, on the calling thread.
    func withOriginal<R>(_ body: () throws -> R) rethrows -> R
}

extension LoRASet: ESDWeights {
    public func withOriginal<R>(_ body: () throws -> R) rethrows -> R {
        try withDisabled(body)
    }
}

/// Full-rank training of the UNet parameters a train method picks: those parameters are
/// made trainable in place and every other one frozen, so the backward pass computes no
/// gradient for a frozen layer's weights.
///
/// The reference keeps a whole second model for the frozen predictions (train-esd.py l.96-103,
/// `model_orig`). Here only the trained parameters' original values are kept, and
/// `withOriginal` swaps them into the UNet's tensors for the reference pass and back: the
/// same outputs for the trained parameters' size in memory, not the whole model's.
public final class FullRankSubset: ESDWeights {
    public let method: ESDTrainMethod
    public let namedParameters: [(String, Tensor)]
    /// The trained parameters' values before training, in `namedParameters` order.
    let originals: [Tensor]

    /// Freezes `unet` and unfreezes the parameters `method` trains.
    public init(unet: UNet2DConditionModel, method: ESDTrainMethod) {
        self.method = method
        unet.setTrainable(false)
        namedParameters = unet.namedParameters.filter { method.trains($0.0) }
        for (_, parameter) in namedParameters { parameter.requiresGrad = true }
        originals = namedParameters.map { $0.1.copy() }
    }

    public var parameterCount: Int { originals.reduce(0) { $0 + $1.count } }

    /// Runs `body` with the original values in the trained tensors (restored on every
    /// path). The swap is in place, element by element: no third copy. Not for use while
    /// another thread runs the UNet.
    public func withOriginal<R>(_ body: () throws -> R) rethrows -> R {
        swapValues()
        defer { swapValues() }
        return try body()
    }

    private func swapValues() {
        for ((_, trained), original) in zip(namedParameters, originals) {
            trained.withUnsafeMutableBufferPointer { a in
                original.withUnsafeMutableBufferPointer { b in
                    for i in a.indices { (a[i], b[i]) = (b[i], a[i]) }
                }
            }
        }
    }
}
