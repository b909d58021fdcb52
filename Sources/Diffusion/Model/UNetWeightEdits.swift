import Tensor

/// UNet parameters overwritten in place by UNet weights files, with their values from
/// before, so that the change can be undone (`restore`, what detaching adapters does) or
/// made permanent (`keep`, what merging does). Unlike a LoRA, the edit is not switched off
/// by `LoRASet.withDisabled`: it is part of the weights until restored.
public final class UNetWeightEdits {
    /// (diffusers key, the parameter, its values before the edit), in model order.
    private var saved: [(String, Tensor, [Float])]

    /// No edit.
    public init() { saved = [] }

    /// Writes each `(key, parameter, new values)` into its parameter, keeping the old ones.
    init(applying edits: [(String, Tensor, [Float])]) {
        saved = edits.map { key, parameter, new in
            let base = parameter.scalars
            parameter.withUnsafeMutableBufferPointer { _ = $0.update(from: new) }
            return (key, parameter, base)
        }
    }

    /// The keys of the edited parameters, in model order.
    public var keys: [String] { saved.map(\.0) }

    /// Puts the base values back; the edit is gone.
    public func restore() {
        for (_, parameter, base) in saved {
            parameter.withUnsafeMutableBufferPointer { _ = $0.update(from: base) }
        }
        saved = []
    }

    /// Forgets the base values: the edited weights are the model's own from now on.
    public func keep() { saved = [] }
}
