import Diffusion
import Foundation
import Tensor
import World
import XCTest

@testable import Evaluation

/// Concept inversion on the shipped world model: the learned token, written and loaded
/// as diffusers' textual-inversion file, is what the text encoder sees in its place, and
/// the gradient it is learned with is the objective's.
final class ConceptInversionTests: XCTestCase {
    func model() throws -> StableDiffusion {
        try StableDiffusion.load(directory: try EmbeddedModel.shippedDirectory())
    }

    func testALoadedTokenIsItsEmbeddingInTheTextEncoder() throws {
        let model = try model()
        let hidden = model.textEncoder.config.hiddenSize
        let vector = Tensor.randn([hidden], key: RandomKey(seed: 3))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "ti-\(UUID()).safetensors"
        ).path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try TextualInversionFile.save(token: "<tok>", embedding: vector, to: path)
        let before = model.tokenizer.encode("a <tok> circle", padTo: model.tokenizer.maxLength)
        try TextualInversionFile.load(path, into: model)
        let ids = model.tokenizer.encode("a <tok> circle", padTo: model.tokenizer.maxLength)
        let id = model.textEncoder.tokenEmbedding.shape[0] - 1
        XCTAssertEqual(ids.filter { $0 == id }.count, 1, "one token, the new row")
        XCTAssertNotEqual(before, ids)
        // The same context from embeddings built by hand: the table's rows, the vector at the token.
        let table = model.textEncoder.tokenEmbedding
        let rows = ids.map { $0 == id ? vector : embedding([$0], weight: table).reshaped([hidden]) }
        let manual = model.textEncoder(
            tokenEmbeddings: concat(rows.map { $0.reshaped([1, 1, hidden]) }, axis: 1))
        let encoded = model.encode(["a <tok> circle"])
        XCTAssertLessThan(zip(encoded.scalars, manual.scalars).map { abs($0 - $1) }.max()!, 1e-5)

        XCTAssertThrowsError(try TextualInversionFile.load(path, into: model)) { error in
            XCTAssertEqual(
                "\(error)",
                "\(path): key '<tok>': the tokenizer already has this token (or it is empty)")
        }
        let short = path + ".short.safetensors"
        defer { try? FileManager.default.removeItem(atPath: short) }
        try TextualInversionFile.save(
            token: "<other>", embedding: Tensor.zeros([hidden - 1]), to: short)
        XCTAssertThrowsError(try TextualInversionFile.load(short, into: model)) { error in
            XCTAssertEqual(
                "\(error)",
                "\(short): key '<other>': embedding of \(hidden - 1) values, the text encoder's are \(hidden)"
            )
        }
    }

    /// Striped world images drawn by the model from explicit prompts, and an inversion
    /// whose token stands for "striped" in those prompts (the world's preset: each image's
    /// own prompt, the mean word embedding to start from).
    func stripedImages(_ model: StableDiffusion, steps: Int = 4) throws -> (
        images: Tensor, prompts: [String], inversion: ConceptInversion
    ) {
        let prompts = [
            "a large striped red circle in the center on a dark background",
            "a large striped blue square in the center on a light background",
        ]
        let images = try TextToImage.sample(
            model: model,
            requests: prompts.enumerated().map {
                TextToImage.Request(prompt: $1, key: RandomKey(seed: UInt64($0)))
            },
            steps: 10, guidance: 3)
        var settings = ConceptInversion.Settings(initializer: .vocabularyMean)
        settings.placeholder = "<s>"
        settings.captions = .prompts
        settings.maxTrainSteps = steps
        settings.trainBatchSize = 2
        settings.gradientAccumulationSteps = 1
        settings.repeats = 2
        let inversion = try ConceptInversion(
            model: model, forbidden: ["striped", "stripes"], settings: settings)
        return (images, prompts.map { inversion.substitute(["striped"], in: $0) }, inversion)
    }

    /// The gradient the embedding is learned with, against central differences of the
    /// same objective (same images, noise and timesteps) along a random direction.
    func testTheTokensGradientMatchesFiniteDifferences() throws {
        let model = try model()
        let (images, prompts, inversion) = try stripedImages(model)
        XCTAssertEqual(prompts[0], "a large <s> red circle in the center on a dark background")
        let (fixed, mask) = try inversion.captionEmbeddings(prompts)
        let hidden = model.textEncoder.config.hiddenSize
        let key = RandomKey(seed: 5)
        func objective(_ vector: Tensor) -> Float {
            let context = model.textEncoder(tokenEmbeddings: fixed + mask * vector)
            return inversion.diffusionLoss.backward(images, context: context, key: key)
        }
        let start = inversion.initialEmbedding.scalars
        let vector = Tensor(start, shape: [1, 1, hidden], requiresGrad: true)
        _ = objective(vector)
        let gradient = try XCTUnwrap(vector.grad).scalars
        let direction = Tensor.randn([hidden], key: RandomKey(seed: 6)).scalars
        let norm = direction.map { Double($0 * $0) }.reduce(0, +).squareRoot()
        let unit = direction.map { Float(Double($0) / norm) }
        func loss(_ t: Float) -> Double {
            let moved = Tensor(zip(start, unit).map { $0 + t * $1 }, shape: [1, 1, hidden])
            return Double(GradMode.withNoGrad { objective(moved) })
        }
        // The loss curves fast along the token: 0.05 is far outside the linear range.
        let h: Float = 0.002
        let numeric = (loss(h) - loss(-h)) / Double(2 * h)
        let analytic = zip(gradient, unit).map { Double($0 * $1) }.reduce(0, +)
        XCTAssertGreaterThan(abs(analytic), 1e-5, "the loss depends on the token")
        XCTAssertEqual(
            analytic, numeric, accuracy: 0.02 * abs(numeric) + 1e-6,
            "autograd \(analytic), central differences \(numeric)")
    }

    func testLearningMovesTheEmbeddingAndRefusesPromptsWithoutTheToken() throws {
        let model = try model()
        let (images, prompts, inversion) = try stripedImages(model)
        var losses: [Float] = []
        var draws = SeededInversionDraws(seed: 0)
        let learned = try XCTUnwrap(
            inversion.learn(images: images, prompts: prompts, draws: &draws) { step in
                losses.append(step.loss)
                return true
            })
        XCTAssertEqual(losses.count, 4)
        XCTAssertEqual(learned.shape, [model.textEncoder.config.hiddenSize])
        XCTAssertNotEqual(
            learned.scalars, inversion.initialEmbedding.scalars, "AdamW moved the embedding")
        XCTAssertThrowsError(
            try inversion.learn(
                images: images,
                prompts: prompts.map { $0.replacingOccurrences(of: "<s>", with: "striped") },
                draws: &draws)
        ) { error in
            XCTAssertTrue("\(error)".contains("does not hold the placeholder <s>"), "\(error)")
        }
        XCTAssertEqual(
            inversion.substitute(["striped"], in: "two blue squares"), "<s> two blue squares",
            "a prompt without the concept's words gets the token in front")
    }

    /// Ctrl-C at step 2 of 4 checkpoints the embedding and AdamW's state; the resumed run
    /// ends on the embedding the uninterrupted one does, bit for bit (the draws are keyed
    /// by epoch and micro-batch). A checkpoint of other settings is refused.
    func testAStoppedRunResumesToTheSameEmbedding() throws {
        let model = try model()
        let (images, prompts, inversion) = try stripedImages(model)
        var draws = SeededInversionDraws(seed: 1)
        let whole = try XCTUnwrap(inversion.learn(images: images, prompts: prompts, draws: &draws))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "inversion-\(UUID()).safetensors"
        ).path
        defer { try? FileManager.default.removeItem(atPath: path) }
        var checkpointing = ConceptInversion.Checkpointing(
            path: path, every: 100, metadata: ["settings": "a"], resume: false)
        let stopped = try inversion.learn(
            images: images, prompts: prompts, draws: &draws, checkpointing: checkpointing
        ) { $0.step < 2 }
        XCTAssertNil(stopped, "stopped at step 2")
        checkpointing.resume = true
        var steps: [Int] = []
        let resumed = try XCTUnwrap(
            inversion.learn(
                images: images, prompts: prompts, draws: &draws, checkpointing: checkpointing
            ) {
                steps.append($0.step)
                return true
            })
        XCTAssertEqual(steps, [3, 4])
        XCTAssertEqual(resumed.scalars, whole.scalars)
        checkpointing.metadata = ["settings": "b"]
        XCTAssertThrowsError(
            try inversion.learn(
                images: images, prompts: prompts, draws: &draws, checkpointing: checkpointing)
        ) { error in
            XCTAssertEqual(
                "\(error)",
                "\(path): was made with settings a, not b; resume with the same settings, or start over without --resume"
            )
        }
    }

    /// An epoch of 10 examples in micro-batches of 4 is 4 + 4 + 2; with accumulation 2 the
    /// optimizer steps after the second and after the third, the epoch's end.
    func testAnEpochEndsOnAStep() {
        var settings = ConceptInversion.Settings(initializer: .vocabularyMean)
        settings.trainBatchSize = 4
        settings.gradientAccumulationSteps = 2
        let plan = EpochPlan(examples: 10, settings: settings)
        XCTAssertEqual(plan.microBatchesPerEpoch, 3)
        XCTAssertEqual(plan.stepsPerEpoch, 2)
        XCTAssertEqual((0..<3).map(plan.steps(after:)), [false, true, true])
        XCTAssertEqual(plan.microBatches(from: 1), 2..<3, "a run resumed at the epoch's 2nd step")
        XCTAssertEqual(plan.members(2, Array(0..<10)), [8, 9])
        XCTAssertEqual(
            settings.effectiveLearningRate, 5e-3 * 8, "--scale_lr: x accumulation x batch")
    }

    func testTheInitializerIsOneTokenAndFlipsMirrorThePixels() throws {
        let model = try model()
        XCTAssertThrowsError(
            try ConceptInversion(
                model: model, forbidden: [],
                settings: .init(initializer: .word("red circle")))
        ) { error in
            XCTAssertTrue("\(error)".contains("is 2 tokens to the model's tokenizer"), "\(error)")
        }
        let image = Tensor([1, 2, 3, 4, 5, 6], shape: [1, 1, 2, 3])
        XCTAssertEqual(InversionImages.mirrored(image).scalars, [3, 2, 1, 6, 5, 4])
        XCTAssertEqual(ConceptInversion.Initializer("vocabulary-mean"), .vocabularyMean)
        XCTAssertEqual(ConceptInversion.Initializer("art"), .word("art"))
    }
}
