import Diffusion
import Foundation
import Tensor
import TestSupport
import XCTest

@testable import Unlearning

/// DUO with adapters in the text encoder (`--targets text-encoder`): the trained pass
/// conditions on the adapted encoder's outputs, with gradients back to its adapters
/// (checked against finite differences), and the reference pass on the original encoder's.
final class TextEncoderAdaptersTests: XCTestCase {
    static let prompts = (
        unsafe: ["a red striped circle", "two blue striped squares"],
        safe: ["a red circle", "two blue squares"]
    )

    func trainer(_ configure: (inout UnlearningSettings) -> Void = { _ in }) throws
        -> UnlearningTrainer
    {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "te-adapters-\(UUID())"
        ).path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: folder) }
        var settings = UnlearningSettings()
        settings.targets = [.textEncoder]
        settings.promptedShare = 1
        settings.unconditionalLambda = 1
        settings.rank = 2
        settings.alpha = 2
        settings.batchSize = 2
        settings.steps = 2
        settings.checkpointEvery = 100
        configure(&settings)
        let pairs = PairData(
            safe: Tensor.randn([2, 3, 32, 32], key: RandomKey(seed: 1)) * 0.5,
            unsafe: Tensor.randn([2, 3, 32, 32], key: RandomKey(seed: 2)) * 0.5,
            unsafePrompts: Self.prompts.unsafe, safePrompts: Self.prompts.safe)
        let trainer = try UnlearningTrainer(
            model: TinyWorldModel.model, pairs: pairs, settings: settings, directory: folder,
            identity: [])
        addTeardownBlock { trainer.lora.detach(from: TinyWorldModel.model.unet) }
        return trainer
    }

    func batch() -> PairBatch {
        let key = RandomKey(seed: 30)
        return PairBatch(
            safe: Tensor.uniform([2, 3, 32, 32], low: -1, high: 1, key: key.fold(in: 1)),
            unsafe: Tensor.uniform([2, 3, 32, 32], low: -1, high: 1, key: key.fold(in: 2)),
            noise: Tensor.randn([2, 3, 32, 32], key: key.fold(in: 3)),
            safeTimesteps: [120, 480], unsafeTimesteps: [300, 650])
    }

    /// The step's loss through the trainer's own encoding of `conditions`.
    func loss(
        _ trainer: UnlearningTrainer,
        _ conditions: [(UnlearningTrainer.Condition, UnlearningTrainer.Condition)]
    )
        -> (Tensor, LossTerms)
    {
        let conditions = conditions.map { (pair: $0.0, prior: $0.1) }
        let reference = trainer.lora.withDisabled {
            GradMode.withNoGrad { trainer.contexts(conditions) }
        }
        let prompts = trainer.contexts(conditions)
        let config = trainer.schedulerConfig
        let terms = DUOLoss.compute(
            unet: trainer.model.unet, lora: trainer.lora, schedule: NoiseSchedule(config: config),
            predictionType: config.predictionType, batch: batch(), emptyPrompt: prompts.empty,
            pairPrompts: prompts.pairs, priorPrompts: prompts.prior, referencePrompts: reference,
            beta: 50, lambda: 10, unconditionalLambda: 1)
        return (terms.loss, terms)
    }

    func movedAdapters(_ trainer: UnlearningTrainer) {
        for (i, (_, adapter)) in trainer.lora.adapters.enumerated() {
            adapter.up.assign(
                Tensor.randn(adapter.up.shape, key: RandomKey(seed: 40).fold(in: UInt64(i)))
                    * 0.1)
        }
    }

    var promptedConditions: [(UnlearningTrainer.Condition, UnlearningTrainer.Condition)] {
        zip(Self.prompts.unsafe, Self.prompts.safe).map { (.text($0), .text($1)) }
    }

    func testTextEncoderAdapterGradientsMatchFiniteDifferences() throws {
        let trainer = try trainer()
        XCTAssertTrue(trainer.lora.adaptsTextEncoder)
        movedAdapters(trainer)
        let (total, _) = loss(trainer, promptedConditions)
        total.backward()
        // Every kind of projection, in the first and the last layer.
        let checked = [0, 3, trainer.lora.adapters.count - 2]
        for index in checked {
            let (name, adapter) = trainer.lora.adapters[index]
            for parameter in [adapter.down, adapter.up] {
                let grad = try XCTUnwrap(parameter.grad, name).scalars
                let i = grad.indices.max { abs(grad[$0]) < abs(grad[$1]) }!
                let h: Float = 1e-2
                func lossAt(_ delta: Float) -> Float {
                    parameter.withUnsafeMutableBufferPointer { $0[i] += delta }
                    defer { parameter.withUnsafeMutableBufferPointer { $0[i] -= delta } }
                    return GradMode.withNoGrad { loss(trainer, promptedConditions).0.item }
                }
                let estimate = (lossAt(h) - lossAt(-h)) / (2 * h)
                // Central differences in float32: the loss (order 1) rounds to ~1e-7 per
                // evaluation, divided by 2h; the step's h² error stays well under 3%.
                XCTAssertEqual(
                    estimate, grad[i], accuracy: 0.03 * abs(grad[i]) + 2e-4,
                    "\(name) \(parameter === adapter.down ? "lora_A" : "lora_B")[\(i)]")
            }
        }
    }

    /// With the adapters only in the text encoder the UNet is the original's: the
    /// reference pass must give what the original model gives on the original encodings,
    /// while the trained pass differs.
    func testTheReferencePassConditionsOnTheOriginalEncoder() throws {
        let trainer = try trainer()
        movedAdapters(trainer)
        let (_, terms) = GradMode.withNoGrad { loss(trainer, promptedConditions) }
        let original = trainer.lora.withDisabled {
            GradMode.withNoGrad { loss(trainer, promptedConditions).1 }
        }
        XCTAssertEqual(terms.mseReferenceSafe, original.mseTrainedSafe)
        XCTAssertEqual(terms.mseReferenceUnsafe, original.mseTrainedUnsafe)
        XCTAssertNotEqual(terms.mseTrainedSafe, original.mseTrainedSafe, "the adapters act")
        XCTAssertGreaterThan(terms.prior, 0)
        XCTAssertGreaterThan(terms.unconditional, 0, "the empty prompt moves too")
    }

    /// Training moves the encoder's adapters, and the in-training attack runs against the
    /// adapted encoder.
    func testTrainingWithTheAttackMovesTheTextEncoderAdapters() throws {
        let trainer = try trainer {
            $0.adversarialShare = 1
            $0.attackWarmupSteps = 1
            $0.attack.steps = 2
        }
        var logs: [TrainingStepLog] = []
        try trainer.train(resume: false) {
            logs.append($0); return true
        }
        XCTAssertEqual(logs.count, 2)
        XCTAssertTrue(logs.allSatisfy { $0.terms.allSatisfy { $0.1.isFinite } })
        XCTAssertNotNil(trainer.adversarialPrefix)
        XCTAssertTrue(
            trainer.lora.adapters.allSatisfy { $0.1.up.scalars.contains { $0 != 0 } },
            "every text-encoder adapter moved")
    }
}
