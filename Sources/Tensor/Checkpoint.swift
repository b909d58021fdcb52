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
        let out = withCollector(found) { GradMode.withNoGrad { body(saved) } }
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
                let again = body(leaves)
                guard again.requiresGrad else { return sources.map { _ in nil } }
                return again.gradients(for: leaves + parameters, seed: dOut)
            }
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
