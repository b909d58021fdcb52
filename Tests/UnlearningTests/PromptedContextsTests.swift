import Diffusion
import Foundation
import Tensor
import TestSupport
import XCTest

@testable import Unlearning

/// Prompted DUO hands each pair its own prompts: the unsafe one to the DPO term, the safe
/// one to the output-preserving term (checked against the text encoder run on each prompt
/// alone, so a pair given another pair's prompt fails).
final class PromptedContextsTests: XCTestCase {
    func trainer(share: Float, directory: String) throws -> UnlearningTrainer {
        let n = 3
        let images = Tensor.zeros([n, 3, 32, 32])
        let pairs = PairData(
            safe: images, unsafe: images,
            unsafePrompts: [
                "a red striped circle", "two blue striped squares", "a large striped cross",
            ],
            safePrompts: ["a red circle", "two blue squares", "a large cross"])
        var settings = UnlearningSettings()
        settings.promptedShare = share
        settings.batchSize = n
        return try UnlearningTrainer(
            model: TinyWorldModel.model, pairs: pairs, settings: settings, directory: directory,
            identity: [])
    }

    func testEachPromptedPairGetsItsOwnUnsafeAndSafePrompt() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "prompted-\(UUID())"
        ).path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let trainer = try trainer(share: 1, directory: folder)
        let model = TinyWorldModel.model
        let indices = [2, 0, 1]
        let contexts = try XCTUnwrap(trainer.promptedContexts(indices, key: RandomKey(seed: 5)))
        for (row, index) in indices.enumerated() {
            assertClose(
                contexts.pairs.slice(batch: row), model.encode([trainer.pairs.unsafePrompts[index]])
            )
            assertClose(
                contexts.prior.slice(batch: row), model.encode([trainer.pairs.safePrompts[index]]))
        }
        XCTAssertNil(
            try self.trainer(share: 0, directory: folder).promptedContexts(
                indices, key: RandomKey(seed: 5)),
            "share 0 is DUO's prompt-free objective")
    }

    func testAShareBetweenZeroAndOneMixesPromptedAndPromptFreePairs() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "prompted-\(UUID())"
        ).path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let trainer = try trainer(share: 0.5, directory: folder)
        let empty = TinyWorldModel.model.encode([""])
        var prompted = 0
        var promptFree = 0
        for seed in 0..<8 as Range<UInt64> {
            let contexts = try XCTUnwrap(
                trainer.promptedContexts([0, 1, 2], key: RandomKey(seed: seed)))
            for row in 0..<3 {
                // Exact: a prompt-free row is a copy of the empty prompt's states.
                let isEmpty = contexts.pairs.slice(batch: row).scalars == empty.scalars
                XCTAssertEqual(
                    isEmpty, contexts.prior.slice(batch: row).scalars == empty.scalars,
                    "a pair is prompted in both terms or in neither")
                if isEmpty { promptFree += 1 } else { prompted += 1 }
            }
        }
        XCTAssertGreaterThan(prompted, 0)
        XCTAssertGreaterThan(promptFree, 0)
    }

    /// The trainer encodes its prompts as one batch, the expected states one prompt at a
    /// time: the text encoder's GEMMs (a row per prompt and token) are blocked differently,
    /// and each state moves by up to a relative ρ of the largest (Float32Rounding).
    func assertClose(_ a: Tensor, _ b: Tensor, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.shape, b.shape, file: file, line: line)
        let rho = Float32Rounding.network(weights: TinyWorldModel.model.textEncoder.parameters)
        let largest = zip(a.scalars, b.scalars).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThanOrEqual(largest, rho * b.scalars.map(abs).max()!, file: file, line: line)
    }
}
