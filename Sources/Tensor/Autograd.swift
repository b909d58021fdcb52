/// Reverse-mode automatic differentiation.
///
/// Each op that has an input requiring a gradient attaches a `GradFn` to its output: the
/// inputs and a closure mapping the output's gradient to the inputs' gradients. The
/// graph is the tape; `backward()` walks it once in reverse topological order and frees it.

/// The backward side of one recorded op.
final class GradFn {
    let name: String
    let inputs: [Tensor]
    /// Maps dOutput to one gradient per input (nil where that input needs none).
    let backward: (Tensor) -> [Tensor?]

    init(name: String, inputs: [Tensor], backward: @escaping (Tensor) -> [Tensor?]) {
        self.name = name
        self.inputs = inputs
        self.backward = backward
    }
}

/// Whether ops record their backward pass, per thread: a shard's reference pass under
/// `withNoGrad` must not stop another shard's trained pass from recording (`DataParallel`).
public enum GradMode {
    private static let disabled = ThreadLocalInt(inherited: true)

    public static var isEnabled: Bool { disabled.value == 0 }

    /// Runs `body` without recording: evaluation keeps no graph and no saved activations.
    public static func withNoGrad<R>(_ body: () throws -> R) rethrows -> R {
        try disabled.with(1, body)
    }

    /// Runs `body` recording, also inside a backward pass (a checkpoint's recomputation).
    static func withGrad<R>(_ body: () throws -> R) rethrows -> R {
        try disabled.with(0, body)
    }
}

extension Tensor {
    /// Attaches the backward pass of the op that produced `self` from `inputs`, when
    /// gradients are being recorded and one of the inputs needs one.
    ///
    /// The closure must not capture `self` (that would be a cycle); ops that need their
    /// output in the backward pass capture `self.detached()`.
    func recorded(
        _ name: String, from inputs: [Tensor], backward: @escaping (Tensor) -> [Tensor?]
    ) -> Tensor {
        if Checkpoint.collector.value != 0 { Checkpoint.note(inputs) }
        guard GradMode.isEnabled, inputs.contains(where: { $0.requiresGrad }) else { return self }
        requiresGrad = true
        gradFn = GradFn(name: name, inputs: inputs, backward: backward)
        return self
    }

    /// Back-propagates from this tensor, accumulating into the `grad` of every leaf that
    /// requires one. `self` must be a scalar unless `gradient` (dL/dself) is given.
    public func backward(_ gradient: Tensor? = nil) {
        propagate(gradient) { leaf, dLeaf in leaf.accumulateGrad(dLeaf) }
    }

    /// The gradients of `self` with respect to `leaves` (nil where none flows), without
    /// touching any leaf's `grad`: for backward passes that run at the same time on
    /// shards of a batch and share the parameters (`DataParallel`). The graph is freed.
    public func gradients(for leaves: [Tensor], seed gradient: Tensor? = nil) -> [Tensor?] {
        var found: [ObjectIdentifier: Tensor] = [:]
        propagate(gradient) { leaf, dLeaf in found[ObjectIdentifier(leaf)] = dLeaf }
        return leaves.map { found[ObjectIdentifier($0)] }
    }

    /// Walks the graph from `self` once, handing each leaf its whole gradient.
    private func propagate(_ gradient: Tensor?, toLeaf: (Tensor, Tensor) -> Void) {
        precondition(
            gradient != nil || count == 1, "backward() from a non-scalar \(shape) needs a gradient")
        let seed = gradient ?? Tensor.ones(shape)
        precondition(seed.shape == shape, "gradient \(seed.shape) for tensor \(shape)")
        var pending: [ObjectIdentifier: Tensor] = [ObjectIdentifier(self): seed]
        for node in topologicalOrder().reversed() {
            guard let dOut = pending.removeValue(forKey: ObjectIdentifier(node)) else { continue }
            guard let fn = node.gradFn else {
                toLeaf(node, dOut)
                continue
            }
            // Gradients are values, not graphs: nothing inside a backward pass records.
            let dInputs = GradMode.withNoGrad { fn.backward(dOut) }
            precondition(dInputs.count == fn.inputs.count, "\(fn.name): gradient count")
            for (input, dInput) in zip(fn.inputs, dInputs) {
                guard input.requiresGrad, let dInput else { continue }
                precondition(dInput.shape == input.shape, "\(fn.name): dInput \(dInput.shape)")
                let key = ObjectIdentifier(input)
                pending[key] = pending[key].map { add($0, dInput) } ?? dInput
            }
            // The graph is used once: free saved activations now.
            node.gradFn = nil
        }
    }

    /// Nodes reachable from `self` through recorded ops, inputs before outputs.
    private func topologicalOrder() -> [Tensor] {
        var order: [Tensor] = []
        var visited: Set<ObjectIdentifier> = []
        var stack: [(Tensor, Bool)] = [(self, false)]
        while let (node, expanded) = stack.popLast() {
            if expanded {
                order.append(node)
                continue
            }
            guard visited.insert(ObjectIdentifier(node)).inserted else { continue }
            stack.append((node, true))
            for input in node.gradFn?.inputs ?? [] where input.requiresGrad {
                if !visited.contains(ObjectIdentifier(input)) { stack.append((input, false)) }
            }
        }
        return order
    }

    func accumulateGrad(_ dSelf: Tensor) {
        if let grad {
            grad.addInPlace(dSelf)
        } else {
            // A copy: an op may hand the same gradient tensor to several inputs, and
            // optimizers and clipping change `grad` in place.
            grad = dSelf.copy()
        }
    }
}
