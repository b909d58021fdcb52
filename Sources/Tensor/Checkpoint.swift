/// Activation checkpointing (Chen et al. 2016, "Training Deep Nets with Sublinear Memory
/// Cost"; PyTorch's `torch.utils.checkpoint`, which diffusers' `enable_gradient_checkpointing`
/// applies per resnet and transformer): a part of the model runs forward without recording,
/// keeping only its inputs, and its backward pass runs it again, recording, and
/// back-propagates through that. Memory falls from every activation inside the part to its
/// inputs, for one more forward pass of it.
public enum Checkpoint {
    /// `body(inputs)`, checkpointed when gradients are recorded. The trainable leaves `body`
    /// reads (weights, LoRA factors) are found while it runs and get their gradients as the
    /// node's inputs, so `backward()` and `gradients(for:)` see them as without
    /// checkpointing. `body` must compute the same values when run again in the backward
    /// pass: no random draws, and the same adapter and precision switches then as now.
    public static func run(_ inputs: [Tensor], _ body: @escaping ([Tensor]) -> Tensor) -> Tensor {
        guard GradMode.isEnabled else { return body(inputs) }
        let saved = inputs.map { $0.detached() }
        let found = Leaves()
        let kept = KeptOutputs()
        let out = withCollector(found) {
            withKeptOutputs(kept, replaying: false) { GradMode.withNoGrad { body(saved) } }
        }
        let parameters = found.tensors.filter { leaf in !inputs.contains { $0 === leaf } }
        let sources = inputs + parameters
        guard sources.contains(where: \.requiresGrad) else { return out }
        let needs = inputs.map(\.requiresGrad)
        return out.recorded("checkpoint", from: sources) { dOut in
            GradMode.withGrad {
                let leaves = zip(saved, needs).map { tensor, needed in
                    let leaf = tensor.detached()
                    leaf.requiresGrad = needed
                    return leaf
                }
                let again = withKeptOutputs(kept, replaying: true) { body(leaves) }
                guard again.requiresGrad else { return sources.map { _ in nil } }
                return again.gradients(for: leaves + parameters, seed: dOut)
            }
        }
    }

    /// `compute()`, or, in the backward pass's second run of a checkpointed part, the value
    /// it gave in the first run, kept since: for ops whose output is small for the work it
    /// takes, such as attention over a long sequence, whose scores are never stored (the
    /// opposite trade from Korthikanti et al. 2022, "Reducing Activation Recomputation in
    /// Large Transformer Models", whose attention stores its scores: they recompute those
    /// and keep the rest). `compute` gives the op's value only, the same from the same
    /// inputs in both runs; the op records its backward pass around the value returned.
    public static func reusingOutput(_ compute: () -> Tensor) -> Tensor {
        guard let address = UnsafeRawPointer(bitPattern: keeper.value) else { return compute() }
        return Unmanaged<KeptOutputs>.fromOpaque(address).takeUnretainedValue().output(compute)
    }

    /// The outputs a checkpointed part's first run kept (`reusingOutput`), in the order it
    /// made them, and how far its second run has taken them.
    final class KeptOutputs {
        var tensors: [Tensor] = []
        var replaying = false
        var next = 0
        /// The part this one runs inside during its first run, if any. A part nested in
        /// another runs first within the outer one's second run, and there takes its
        /// outputs from the outer one's: both runs of the outer part meet the same ops.
        var enclosing: KeptOutputs?

        func output(_ compute: () -> Tensor) -> Tensor {
            if replaying {
                precondition(next < tensors.count, "checkpoint: the second run made more outputs")
                defer { next += 1 }
                return tensors[next].detached()  // a node of its own for the op to record on
            }
            let out = enclosing?.output(compute) ?? compute()
            tensors.append(out.detached())
            return out
        }
    }

    /// This thread's innermost running `KeptOutputs`, as its address (0: none).
    static let keeper = ThreadLocalInt()

    static func withKeptOutputs<R>(_ kept: KeptOutputs, replaying: Bool, _ body: () -> R) -> R {
        kept.replaying = replaying
        kept.next = 0
        kept.enclosing = UnsafeRawPointer(bitPattern: keeper.value).map {
            Unmanaged<KeptOutputs>.fromOpaque($0).takeUnretainedValue()
        }
        defer { kept.enclosing = nil }
        return withExtendedLifetime(kept) {
            keeper.with(Int(bitPattern: Unmanaged.passUnretained(kept).toOpaque()), body)
        }
    }

    /// The trainable leaves a checkpointed part reads, each once, in the order first seen.
    final class Leaves {
        var tensors: [Tensor] = []
        var seen: Set<ObjectIdentifier> = []
    }

    /// This thread's collecting `Leaves`, as its address (0: none). Not inherited: ops
    /// record on the thread that called them, whatever threads computed them.
    static let collector = ThreadLocalInt()

    static func withCollector<R>(_ leaves: Leaves, _ body: () -> R) -> R {
        withExtendedLifetime(leaves) {
            collector.with(Int(bitPattern: Unmanaged.passUnretained(leaves).toOpaque()), body)
        }
    }

    /// Notes the trainable leaves among an op's inputs (called by every op as it records).
    static func note(_ inputs: [Tensor]) {
        guard let address = UnsafeRawPointer(bitPattern: collector.value) else { return }
        let leaves = Unmanaged<Leaves>.fromOpaque(address).takeUnretainedValue()
        for input in inputs where input.requiresGrad && input.gradFn == nil {
            if leaves.seen.insert(ObjectIdentifier(input)).inserted { leaves.tensors.append(input) }
        }
    }
}
