import Tensor

/// UNet parameters overwritten in place by UNet weights files, with the values they do not
/// hold now, so that the change can be undone (`restore`, what detaching adapters does),
/// put back (`apply`), or made permanent (`keep`, what merging does). Unlike a LoRA, the edit
/// is not switched off by `LoRASet.withDisabled`: it is part of the weights until restored.
public final class UNetWeightEdits {
    /// (diffusers key, the parameter, its other values), in model order: the values from
    /// before the edit while it is applied, the edited values while it is restored. One
    /// copy either way, swapped with the parameter's.
    private var saved: [(String, Tensor, [Float])]
    /// Whether the parameters hold the edited values now.
    public private(set) var isApplied: Bool

    /// No edit.
    public init() {
        saved = []
        isApplied = true
    }

    /// Writes each `(key, parameter, new values)` into its parameter, keeping the old ones.
    init(applying edits: [(String, Tensor, [Float])]) {
        saved = edits
        isApplied = false
        apply()
    }

    /// The keys of the edited parameters, in model order.
    public var keys: [String] { saved.map(\.0) }

    /// Puts the base values back; `apply` brings the edit back.
    public func restore() {
        guard isApplied else { return }
        swapValues()
        isApplied = false
    }

    /// Writes the edited values again after a `restore`.
    public func apply() {
        guard !isApplied else { return }
        swapValues()
        isApplied = true
    }

    /// Applies the edit and forgets the base values: the edited weights are the model's own
    /// from now on.
    public func keep() {
        apply()
        saved = []
    }

    private func swapValues() {
        saved = saved.map { key, parameter, other in
            let current = parameter.scalars
            parameter.withUnsafeMutableBufferPointer { _ = $0.update(from: other) }
            return (key, parameter, current)
        }
    }
}
