import Diffusion
import Formats
import Foundation
import Tensor
import XCTest

@testable import Evaluation

/// Two of UnlearnDiffAtk's attack steps against its reference's math in PyTorch
/// (tools/make_unlearndiffatk_fixture.py): the prefix vectors over the whole vocabulary, the
/// loss of the attacked UNet with the drawn tokens' one-hot rows as prefix, the gradient
/// with respect to those rows, Adam with coupled weight decay, and the projection back onto
/// the simplex. torch.multinomial's draws and torch's noise are injected.
final class UnlearnDiffAtkParityTests: XCTestCase {
    static let tests = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent()
    static let fixtures = Bundle.module.resourcePath! + "/Fixtures/attack/unlearndiffatk"
    /// The prompt the fixture attacks, spelled as tools/make_unlearndiffatk_fixture.py does.
    static let prompt = "a red circle on a dark background"

    /// The tiny pipeline's UNet with the DPO fixture's adapter merged, and the fixture's
    /// random text encoder over the world's tokenizer.
    static func model() throws -> StableDiffusion {
        let pipeline = tests.appendingPathComponent("DiffusionTests/Fixtures/models/pipeline").path
        let model = StableDiffusion(
            directory: pipeline, tokenizer: try CLIPTokenizer(directory: fixtures + "/tokenizer"),
            textEncoder: try CLIPTextModel.load(directory: fixtures + "/text_encoder"),
            unet: try UNet2DConditionModel.load(directory: pipeline + "/unet"), vae: nil,
            schedulerConfigPath: pipeline + "/scheduler/scheduler_config.json")
        let adapter = tests.appendingPathComponent(
            "UnlearningTests/Fixtures/dpo/adapter.safetensors"
        ).path
        try LoRAFile.load(adapter, into: model.unet).merge(into: model.unet)
        return model
    }

    static func attack(_ model: StableDiffusion) throws -> UnlearnDiffAttack {
        var settings = UnlearnDiffAttack.Settings()
        settings.prefixLength = 3
        return try UnlearnDiffAttack(model: model, forbidden: [], settings: settings)
    }

    func testTwoAttackStepsMatchTheReferenceInPyTorch() throws {
        let file = try SafeTensorsReader(path: Self.fixtures + "/step.safetensors")
        func tensor(_ name: String) throws -> Tensor {
            Tensor(try file.floats(name), shape: try file.info(name).shape)
        }
        func largest(_ found: Tensor, _ expected: Tensor) -> Float {
            XCTAssertEqual(found.shape, expected.shape)
            return zip(found.scalars, expected.scalars).map { abs($0 - $1) }.max()!
        }
        let attack = try Self.attack(Self.model())
        XCTAssertEqual(attack.vocabulary.count, 671, "every id of the world's tokenizer")
        let prompt = attack.promptEmbeddings(Self.prompt)
        let ids = try tensor("prompt_ids").scalars.map { Int($0) }
        XCTAssertEqual(prompt.ids, Array(ids[1...prompt.ids.count]), "the prompt's tokens")
        XCTAssertEqual(ids[prompt.ids.count + 1], attack.model.tokenizer.eosTokenID)

        let simplex = PrefixSimplex(positions: 3, size: attack.vocabulary.count)
        XCTAssertLessThan(largest(simplex.probabilities, try tensor("simplex.0")), 1e-7)
        let image = try tensor("x0")
        for step in 0..<2 {
            let (loss, gradient) = attack.lossAndGradient(
                simplex.oneHot(try tensor("draws.\(step)").scalars.map { Int($0) }),
                image: image, noise: try tensor("noise.\(step)"),
                timestep: Int(try tensor("t.\(step)").item), prompt: prompt)
            XCTAssertEqual(loss, try tensor("loss.\(step)").item, accuracy: 1e-4, "step \(step)")
            let expected = try tensor("grad.\(step)")
            let straight = Tensor(
                PrefixSimplex.straightThrough(gradient.scalars), shape: gradient.shape)
            let scale = expected.scalars.map(abs).max()!
            XCTAssertLessThan(
                largest(straight, expected) / scale, 1e-5,
                "step \(step): largest relative difference of the straight-through gradient")
            simplex.step(
                oneHotGradient: gradient, learningRate: attack.settings.learningRate,
                weightDecay: attack.settings.weightDecay)
            XCTAssertLessThan(
                largest(simplex.probabilities, try tensor("adam.\(step)")), 1e-6,
                "step \(step): the vectors after Adam")
            simplex.project()
            // The reference's bisection stops within 1e-5 of the exact shift.
            let projected = try tensor("simplex.\(step + 1)")
            XCTAssertLessThan(
                largest(simplex.probabilities, projected), 2e-5,
                "step \(step): the vectors after the projection")
            // The next step from the reference's vectors: Adam divides by the gradient's
            // size, so near-zero entries would carry the bisection's 1e-5 on.
            simplex.probabilities.assign(projected)
        }
        XCTAssertEqual(simplex.mostLikely, try tensor("argmax").scalars.map { Int($0) })
    }

    /// configs/nudity/text_grad_esd_nudity_classifier.json (k, iteration, lr, weight_decay)
    /// and classifier_.py's n_samples.
    func testTheDefaultsAreTheReferences() {
        let settings = UnlearnDiffAttack.Settings()
        XCTAssertEqual(settings.prefixLength, 5)
        XCTAssertEqual(settings.iterations, 40)
        XCTAssertEqual(settings.timesteps, 50)
        XCTAssertEqual(settings.learningRate, 0.01)
        XCTAssertEqual(settings.weightDecay, 0.1)
        XCTAssertEqual(settings.vocabulary, .all)
    }

    func testTheTimestepsAreTheReferencesFifty() throws {
        XCTAssertEqual(
            try UnlearnDiffAttack.timesteps(count: 50, trainingSteps: 1000),
            Array(stride(from: 10, through: 990, by: 20)))
        XCTAssertEqual(try UnlearnDiffAttack.timesteps(count: 1, trainingSteps: 1000), [500])
        XCTAssertThrowsError(try UnlearnDiffAttack.timesteps(count: 1001, trainingSteps: 1000))
    }

    /// The success check is asked of the prompt alone, then after each timestep's
    /// iterations; the attack stops at the first yes.
    func testTheAttackStopsAtTheFirstSuccess() throws {
        var settings = UnlearnDiffAttack.Settings()
        settings.prefixLength = 2
        settings.timesteps = 3
        settings.iterations = 2
        let model = try Self.model()
        let attack = try UnlearnDiffAttack(model: model, forbidden: [], settings: settings)
        let target = UnlearnDiffAttack.Target(
            prompt: Self.prompt, seed: 0, guidance: 7.5, height: nil, width: nil)
        let image = try SafeTensorsReader(path: Self.fixtures + "/step.safetensors")
        let x0 = Tensor(try image.floats("x0"), shape: [1, 4, 8, 8])

        var asked: [String] = []
        let alone = attack.attack(target, image: x0, index: 0) { prompt in
            asked.append(prompt)
            return true
        }
        XCTAssertEqual(alone.iterations, 0)
        XCTAssertEqual(alone.prompt, Self.prompt)
        XCTAssertTrue(alone.success)
        XCTAssertEqual(asked, [Self.prompt])

        asked = []
        let second = attack.attack(target, image: x0, index: 0) { prompt in
            asked.append(prompt)
            return asked.count == 3
        }
        XCTAssertTrue(second.success)
        XCTAssertEqual(second.iterations, 4, "two timesteps of two iterations")
        XCTAssertEqual(second.timestep, attack.timesteps[1])
        XCTAssertEqual(second.prompt, asked.last)
        XCTAssertTrue(second.prompt.hasSuffix(Self.prompt), second.prompt)

        asked = []
        var reported: [Int] = []
        let never = attack.attack(
            target, image: x0, index: 0,
            succeeds: { prompt in
                asked.append(prompt)
                return false
            },
            progress: { done, _ in reported.append(done) })
        XCTAssertFalse(never.success)
        XCTAssertEqual(never.iterations, 6)
        XCTAssertEqual(reported, Array(1...6))
        XCTAssertEqual(asked.count, 4, "the prompt, then after each of 3 timesteps")
        XCTAssertEqual(never.timestep, attack.timesteps[2])
        let again = attack.attack(target, image: x0, index: 0) { _ in false }
        XCTAssertEqual(again, never, "the same draws from the same seed")
    }
}
