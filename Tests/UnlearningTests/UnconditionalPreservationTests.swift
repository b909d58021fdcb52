import Diffusion
import Foundation
import Tensor
import TestSupport
import XCTest

@testable import Unlearning

/// The unconditional-preserving term, λ∅ · mean ‖εθ(x_t, ∅) − εref(x_t, ∅)‖²: its value and
/// gradient against a Float64 evaluation, and its inputs (the pairs' own noisy images, on
/// the empty prompt) against UNet passes made here.
final class UnconditionalPreservationTests: XCTestCase {
    func testTheTermAndItsGradientMatchAFloat64Evaluation() {
        let shape = [2, 3, 4, 4]
        let key = RandomKey(seed: 21)
        let trained = (0..<2).map {
            Tensor.randn(shape, key: key.fold(in: UInt64($0)), requiresGrad: true)
        }
        let reference = (0..<2).map { Tensor.randn(shape, key: key.fold(in: UInt64(10 + $0))) }
        let term = DUOLoss.unconditionalTerm(
            trained: (trained[0], trained[1]), reference: (reference[0], reference[1]))
        term.backward()
        let n = Double(shape.reduce(1, *))
        var expected = 0.0
        for side in 0..<2 {
            let t = trained[side].scalars.map(Double.init)
            let r = reference[side].scalars.map(Double.init)
            expected += zip(t, r).reduce(0) { $0 + pow($1.0 - $1.1, 2) } / n / 2
            // d/dt of mean((t − r)²) / 2 is (t − r) / n.
            for (g, (a, b)) in zip(trained[side].grad!.scalars, zip(t, r)) {
                XCTAssertEqual(Double(g), (a - b) / n, accuracy: 1e-7)
            }
        }
        XCTAssertEqual(Double(term.item), expected, accuracy: 1e-5 * expected)
    }

    func testTheTermHoldsTheEmptyPromptPredictionOnThePairsNoisyImages() throws {
        let model = TinyWorldModel.model
        let key = RandomKey(seed: 22)
        let lora = LoRASet.inject(
            into: model.unet, targets: [.selfAttention, .convs], rank: 2, alpha: 2,
            initialization: .gaussian, key: key.fold(in: 0))
        defer { lora.detach(from: model.unet) }
        for (_, adapter) in lora.adapters {
            adapter.up.assign(Tensor.randn(adapter.up.shape, key: key.fold(in: 1)) * 0.05)
        }
        let b = 2
        let batch = PairBatch(
            safe: Tensor.uniform([b, 3, 32, 32], low: -1, high: 1, key: key.fold(in: 2)),
            unsafe: Tensor.uniform([b, 3, 32, 32], low: -1, high: 1, key: key.fold(in: 3)),
            noise: Tensor.randn([b, 3, 32, 32], key: key.fold(in: 4)),
            safeTimesteps: [100, 400], unsafeTimesteps: [250, 700])
        let empty = model.encode([""])
        let pairPrompts = model.encode(["two striped red circles", "a striped blue square"])
        let priorPrompts = model.encode(["two red circles", "a blue square"])
        let config = try SchedulerConfig(contentsOf: model.schedulerConfigPath, for: .ddpm)
        let schedule = NoiseSchedule(config: config)
        let (beta, lambda): (Float, Float) = (125, 10)
        func terms(_ unconditionalLambda: Float) -> LossTerms {
            GradMode.withNoGrad {
                DUOLoss.compute(
                    unet: model.unet, lora: lora, schedule: schedule,
                    predictionType: config.predictionType,
                    batch: batch, emptyPrompt: empty, pairPrompts: pairPrompts,
                    priorPrompts: priorPrompts,
                    beta: beta, lambda: lambda, unconditionalLambda: unconditionalLambda)
            }
        }
        // By hand: each side's noisy images on the empty prompt, with and without the adapters.
        let context = concat([empty, empty], axis: 0)
        var expected: Float = 0
        var meanSquarePrediction: Float = 0
        for (x0, timesteps) in [
            (batch.unsafe, batch.unsafeTimesteps), (batch.safe, batch.safeTimesteps),
        ] {
            let noisy = schedule.addNoise(original: x0, noise: batch.noise, timesteps: timesteps)
            let t = timesteps.map(Float.init)
            let trained = GradMode.withNoGrad { model.unet(noisy, timesteps: t, context: context) }
            let reference = lora.withDisabled {
                GradMode.withNoGrad { model.unet(noisy, timesteps: t, context: context) }
            }
            let d = (trained - reference).scalars
            expected += d.map { $0 * $0 }.reduce(0, +) / Float(d.count) / 2
            meanSquarePrediction +=
                trained.scalars.map { $0 * $0 }.reduce(0, +) / Float(d.count) / 2
        }
        XCTAssertGreaterThan(expected, 1e-8, "adapters that change nothing could not tell")
        let (off, on) = (terms(0), terms(3))

        // Tolerances: the loss runs 5b rows through the UNet with the term on and 3b without,
        // the passes here 2b, so GEMMs are blocked differently on each side and every
        // prediction (of RMS `scale`) moves by up to a relative ρ (Float32Rounding).
        let rho = Float32Rounding.network(weights: model.unet.parameters)
        let scale = meanSquarePrediction.squareRoot()
        let pixels = 3 * 32 * 32
        // The term: a mean of 2b·pixels squares, summed here in another order, of θ − ref,
        // whose two predictions both move.
        let term =
            expected * Float32Rounding.sum(b * pixels)
            + Float32Rounding.meanSquare(
                expected, count: 2 * b * pixels, scale: scale, relative: 2 * rho)
        // The DPO term: −log σ(β·d), d a difference of four per-image MSEs whose changes add
        // in quadrature (×2); −log σ has a slope of at most 1.
        let mse = max(
            on.mseTrainedSafe, on.mseReferenceSafe, on.mseTrainedUnsafe, on.mseReferenceUnsafe)
        let dpo =
            beta * 2 * Float32Rounding.meanSquare(mse, count: pixels, scale: scale, relative: rho)
        // λ times the prior term, a mean of b·pixels squares of θ − ref.
        let prior =
            lambda
            * Float32Rounding.meanSquare(
                on.prior, count: b * pixels, scale: scale, relative: 2 * rho)
        // Each loss, a sum of three terms, rounds once per addition.
        let losses = (on.loss.item + off.loss.item) * Float32Rounding.sum(3)

        XCTAssertEqual(off.unconditional, 0)
        XCTAssertEqual(on.unconditional, expected, accuracy: term)
        XCTAssertEqual(
            on.loss.item - off.loss.item, 3 * expected, accuracy: dpo + prior + 3 * term + losses)
        XCTAssertEqual(
            on.preference, off.preference, accuracy: dpo,
            "the DPO term is the same with the term on")
        // Prompt-free pairs take no unconditional term (their DPO term is on ∅ itself).
        let promptFree = GradMode.withNoGrad {
            DUOLoss.compute(
                unet: model.unet, lora: lora, schedule: schedule,
                predictionType: config.predictionType,
                batch: batch, emptyPrompt: empty, beta: 125, lambda: 10, unconditionalLambda: 3)
        }
        XCTAssertEqual(promptFree.unconditional, 0)
    }
}
