import Concepts
import Diffusion
import Foundation
import Tensor
import TestSupport
import XCTest

@testable import Unlearning

/// The attack inside training (`SoftPromptAttack`, AdvUnlearn's loop): its prompt layout
/// against the text encoder run on token ids, what a round leaves behind, and that a stopped
/// adversarial run resumes to the same adapter (the prefix is part of the checkpoint).
final class SoftPromptAttackTests: XCTestCase {
    static let prompts = (
        unsafe: ["a red striped circle", "two blue striped squares", "a large striped cross"],
        safe: ["a red circle", "two blue squares", "a large cross"]
    )

    func pairs() -> PairData {
        let n = 3
        return PairData(
            safe: Tensor.randn([n, 3, 32, 32], key: RandomKey(seed: 1)) * 0.5,
            unsafe: Tensor.randn([n, 3, 32, 32], key: RandomKey(seed: 2)) * 0.5,
            unsafePrompts: Self.prompts.unsafe, safePrompts: Self.prompts.safe)
    }

    func settings(steps: Int) -> UnlearningSettings {
        var settings = UnlearningSettings()
        settings.promptedShare = 1
        settings.adversarialShare = 1
        settings.attackWarmupSteps = 1
        settings.attack.steps = 2
        settings.rank = 2
        settings.batchSize = 2
        settings.steps = steps
        settings.checkpointEvery = 100
        return settings
    }

    func folder() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "soft-prompt-\(UUID())"
        ).path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    /// A prefix of real tokens' embeddings gives the states of bos, those tokens, the prompt,
    /// eos and padding read as ids: the layout the attack and the trained contexts use.
    func testAPrefixOfTokenEmbeddingsEncodesAsThoseTokensBeforeThePrompt() {
        let model = TinyWorldModel.model
        let tokenizer = model.tokenizer
        let prompt = "a red striped circle"
        let prefixIDs = tokenizer.tokenIDs("blue square")
        let layout = PrefixedPrompt(
            prompt, prefixLength: prefixIDs.count, tokenizer: tokenizer,
            textEncoder: model.textEncoder)
        let hidden = model.textEncoder.config.hiddenSize
        let prefix = GradMode.withNoGrad {
            embedding(prefixIDs, weight: model.textEncoder.tokenEmbedding)
                .reshaped([1, prefixIDs.count, hidden])
        }
        let fromEmbeddings = GradMode.withNoGrad {
            layout.context(prefix: prefix, textEncoder: model.textEncoder)
        }
        var ids = [tokenizer.bosTokenID] + prefixIDs + tokenizer.tokenIDs(prompt)
        ids += [tokenizer.eosTokenID]
        ids += Array(repeating: tokenizer.padTokenID, count: tokenizer.maxLength - ids.count)
        let fromIDs = GradMode.withNoGrad { model.textEncoder([ids]) }
        // The same rows through the same layers: equal up to the summation order the two
        // paths' GEMMs may take (the same shapes here, so equal in practice).
        let rho = Float32Rounding.network(weights: model.textEncoder.parameters)
        let largest = zip(fromEmbeddings.scalars, fromIDs.scalars).map { abs($0 - $1) }.max()!
        XCTAssertLessThanOrEqual(largest, rho * fromIDs.scalars.map(abs).max()!)
    }

    /// A round moves the prefix, lowers the attacked model's loss on the image it attacks
    /// (the mean over fixed draws), and leaves the adapters as it found them: trainable and
    /// without gradients.
    func testARoundMovesThePrefixDownTheObjectiveAndLeavesTheAdaptersAlone() throws {
        let model = TinyWorldModel.model
        let trainer = try UnlearningTrainer(
            model: model, pairs: pairs(), settings: settings(steps: 1), directory: try folder(),
            identity: [])
        defer { trainer.lora.detach(from: model.unet) }
        var attackSettings = SoftPromptAttack.Settings()
        attackSettings.steps = 20
        attackSettings.learningRate = 1e-2
        let attack = try SoftPromptAttack(model: model, settings: attackSettings)
        let image = trainer.pairs.unsafe.slice(batch: 0)
        let prompt = Self.prompts.unsafe[0]
        let start = attack.initialPrefix(key: RandomKey(seed: 3))
        let (moved, _) = attack.round(
            prefix: start, prompt: prompt, image: image, frozen: trainer.optimizer.parameters,
            key: RandomKey(seed: 4))
        XCTAssertEqual(moved.shape, start.shape)
        XCTAssertNotEqual(moved.scalars, start.scalars)
        XCTAssertFalse(moved.requiresGrad)
        for parameter in trainer.optimizer.parameters {
            XCTAssertTrue(parameter.requiresGrad)
            XCTAssertNil(parameter.grad)
        }
        func meanLoss(_ prefix: Tensor) -> Float {
            let layout = PrefixedPrompt(
                prompt, prefixLength: 1, tokenizer: model.tokenizer, textEncoder: model.textEncoder)
            return GradMode.withNoGrad {
                (0..<16).map { i -> Float in
                    let key = RandomKey(seed: 100 + UInt64(i))
                    return attack.objective.loss(
                        image,
                        context: layout.context(prefix: prefix, textEncoder: model.textEncoder),
                        noise: Tensor.randn(image.shape, key: key), timesteps: [50 + 50 * i]
                    ).item
                }.reduce(0, +)
            }
        }
        XCTAssertLessThan(meanLoss(moved), meanLoss(start))
    }

    /// After the warm-up, a pair drawn for the attack gets its unsafe prompt after the
    /// attack's prefix in the DPO term and its safe prompt in the output-preserving term;
    /// before it, its own prompts.
    func testAttackedPairsGetThePrefixBeforeTheirUnsafePromptOnly() throws {
        let model = TinyWorldModel.model
        let trainer = try UnlearningTrainer(
            model: model, pairs: pairs(), settings: settings(steps: 1), directory: try folder(),
            identity: [])
        defer { trainer.lora.detach(from: model.unet) }
        let indices = [2, 0]
        let before = try XCTUnwrap(trainer.promptedContexts(indices, key: RandomKey(seed: 5)))
        XCTAssertNil(trainer.attackRound(0), "step 0 is inside the warm-up")
        let loss = try XCTUnwrap(trainer.attackRound(1))
        XCTAssertTrue(loss.isFinite)
        let prefix = try XCTUnwrap(trainer.adversarialPrefix)
        let after = try XCTUnwrap(trainer.promptedContexts(indices, key: RandomKey(seed: 5)))
        let attack = try XCTUnwrap(trainer.attack)
        for (row, index) in indices.enumerated() {
            XCTAssertEqual(
                before.pairs.slice(batch: row).scalars,
                trainer.unsafePrompts!.slice(batch: index).scalars)
            XCTAssertEqual(
                after.pairs.slice(batch: row).scalars,
                attack.context(prefix: prefix, prompt: Self.prompts.unsafe[index]).scalars)
            XCTAssertEqual(
                after.prior.slice(batch: row).scalars,
                trainer.safePrompts!.slice(batch: index).scalars)
        }
    }

    /// A run stopped after the attack began resumes to the same adapter and attack losses
    /// as one never stopped: the prefix a round starts from is saved with the checkpoint.
    func testAStoppedAdversarialRunResumesToTheSameAdapter() throws {
        let model = TinyWorldModel.model
        func run(stopAt: Int?, directory: String, resume: Bool) throws -> (
            [Float], [String: [Float]]
        ) {
            let trainer = try UnlearningTrainer(
                model: model, pairs: pairs(), settings: settings(steps: 4), directory: directory,
                identity: [])
            defer { trainer.lora.detach(from: model.unet) }
            var attackLosses: [Float] = []
            try trainer.train(resume: resume) { log in
                attackLosses.append(log.terms.first { $0.0 == "attack_loss" }!.1)
                return log.step != stopAt
            }
            let weights = Dictionary(
                uniqueKeysWithValues: trainer.lora.namedParameters.map { ($0.0, $0.1.scalars) })
            return (attackLosses, weights)
        }
        let straight = try run(stopAt: nil, directory: try folder(), resume: false)
        let stopped = try folder()
        let first = try run(stopAt: 3, directory: stopped, resume: false)
        let rest = try run(stopAt: nil, directory: stopped, resume: true)
        XCTAssertEqual(first.0 + rest.0, straight.0, "attack losses, step by step")
        XCTAssertEqual(straight.0[0], 0, "no attack inside the warm-up")
        XCTAssertEqual(rest.1, straight.1, "adapter weights")
    }

    func testAnAdversarialShareNeedsPromptedPairsAndIsRecordedWithTheAttacksSettings() throws {
        var options = UnlearningOptions()
        options.adversarialShare = 0.5
        XCTAssertThrowsError(
            try UnlearningSettings.merged(model: .init(), concept: .init(), options: options)
        ) {
            XCTAssertTrue("\($0)".contains("--adversarial-share 0.5 needs prompted pairs"), "\($0)")
        }
        var concept = ConceptFile.UnlearningDefaults()
        concept.adversarialShare = 0.5
        concept.attackSteps = 7
        XCTAssertEqual(
            try UnlearningSettings.merged(model: .init(), concept: concept, options: .init())
                .adversarialShare, 0, "a concept file's, on a prompt-free run: dropped")
        options.promptedShare = 1
        options.attackWarmupSteps = 5
        let settings = try UnlearningSettings.merged(
            model: .init(), concept: concept, options: options)
        let fields = Dictionary(settings.fields.map { ($0.key, $0.value.line) }) { a, _ in a }
        XCTAssertEqual(fields["adversarial_share"], "0.5")
        XCTAssertEqual(fields["attack_steps"], "7", "the concept file's")
        XCTAssertEqual(fields["attack_warmup_steps"], "5", "the option's")
        XCTAssertEqual(fields["attack_tokens"], "1")
        XCTAssertNil(
            UnlearningSettings().fields.first { $0.key.hasPrefix("attack") },
            "off: older runs keep their config")
    }
}
