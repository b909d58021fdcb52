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
    /// whose token stands for "striped" in those prompts.
    func stripedImages(_ model: StableDiffusion) throws -> (
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
        var settings = ConceptInversion.Settings()
        settings.placeholder = "<s>"
        settings.steps = 4
        settings.batchSize = 2
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
        let (fixed, mask) = inversion.promptEmbeddings(prompts)
        let hidden = model.textEncoder.config.hiddenSize
        let key = RandomKey(seed: 5)
        let start = inversion.initialEmbedding.scalars
        let vector = Tensor(start, shape: [1, 1, hidden], requiresGrad: true)
        _ = inversion.backwardObjective(vector, images: images, fixed: fixed, mask: mask, key: key)
        let gradient = try XCTUnwrap(vector.grad).scalars
        let direction = Tensor.randn([hidden], key: RandomKey(seed: 6)).scalars
        let norm = direction.map { Double($0 * $0) }.reduce(0, +).squareRoot()
        let unit = direction.map { Float(Double($0) / norm) }
        func loss(_ t: Float) -> Double {
            let moved = Tensor(zip(start, unit).map { $0 + t * $1 }, shape: [1, 1, hidden])
            return Double(
                GradMode.withNoGrad {
                    inversion.backwardObjective(
                        moved, images: images, fixed: fixed, mask: mask, key: key)
                })
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
        let learned = try inversion.learn(images: images, prompts: prompts) { _, loss in
            losses.append(loss)
        }
        XCTAssertEqual(losses.count, 4)
        XCTAssertEqual(learned.shape, [model.textEncoder.config.hiddenSize])
        XCTAssertNotEqual(
            learned.scalars, inversion.initialEmbedding.scalars, "Adam moved the embedding")
        XCTAssertThrowsError(
            try inversion.learn(
                images: images,
                prompts: prompts.map { $0.replacingOccurrences(of: "<s>", with: "striped") })
        ) { error in
            XCTAssertTrue("\(error)".contains("does not hold the placeholder <s>"), "\(error)")
        }
        XCTAssertEqual(
            inversion.substitute(["striped"], in: "two blue squares"), "<s> two blue squares",
            "a prompt without the concept's words gets the token in front")
    }
}
