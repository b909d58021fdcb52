import Diffusion
import Formats
import Foundation
import Tensor
import XCTest

@testable import Unlearning

/// One DUO step against the same step in PyTorch with peft adapters, on the tiny pipeline
/// model (tools/make_dpo_fixture.py): loss terms and every adapter gradient to 1e-4,
/// prompt-free (DUO's objective) and prompted (one pair on a prompt, its prior on another).
final class DUOStepParityTests: XCTestCase {
    static let fixtures = Bundle.module.resourcePath! + "/Fixtures/dpo"
    static let pipeline = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent()
        .appendingPathComponent("DiffusionTests/Fixtures/models/pipeline").path

    func testDUOStepMatchesPyTorch() throws {
        try checkStep("step.safetensors", prompted: false)
    }

    func testPromptedDUOStepMatchesPyTorch() throws {
        try checkStep("prompted-step.safetensors", prompted: true)
    }

    /// duo's unconditional-preserving term (stripes' default), written independently in
    /// PyTorch (tools/make_dpo_fixture.py --unconditional).
    func testUnconditionalPreservationMatchesPyTorch() throws {
        try checkStep("unconditional-step.safetensors", prompted: true, unconditional: true)
    }

    /// `duo unlearn --method dspo`'s step: DSPO's pair term as its authors' code computes it
    /// (tools/make_dpo_fixture.py --dspo), one timestep per pair, with DUO's prior term.
    func testDSPOStepMatchesPyTorch() throws {
        try checkStep("dspo-step.safetensors", prompted: false, dspo: true)
    }

    func checkStep(
        _ file: String, prompted: Bool, unconditional: Bool = false, dspo: Bool = false
    ) throws {
        let step = try SafeTensorsReader(path: Self.fixtures + "/" + file)
        func tensor(_ name: String) throws -> Tensor {
            Tensor(try step.floats(name), shape: try step.info(name).shape)
        }
        let model = try StableDiffusion.load(directory: Self.pipeline)
        let lora = try LoRAFile.load(Self.fixtures + "/adapter.safetensors", into: model.unet)
        XCTAssertEqual(lora.adapters.count, 4 * 4, "attn1 q, k, v, out in four transformers")
        let timesteps = try tensor("timesteps").scalars.map { Int($0) }
        let config = try SchedulerConfig(contentsOf: model.schedulerConfigPath, for: .ddpm)
        let terms = DUOLoss.compute(
            unet: model.unet, lora: lora, schedule: NoiseSchedule(config: config),
            predictionType: config.predictionType,
            batch: PairBatch(
                safe: try tensor("safe"), unsafe: try tensor("unsafe"), noise: try tensor("noise"),
                safeTimesteps: Array(timesteps[2...]), unsafeTimesteps: Array(timesteps[..<2])),
            emptyPrompt: model.encode([""]),
            pairPrompts: prompted ? try tensor("pair_context") : nil,
            priorPrompts: prompted ? try tensor("prior_context") : nil,
            beta: Float(step.metadata[dspo ? "dspo_beta" : "beta"]!)!,
            lambda: Float(step.metadata["lambda"]!)!,
            unconditionalLambda: unconditional ? Float(step.metadata["unconditional_lambda"]!)! : 0,
            convention: dspo ? .diffusionDPO : .duo, preference: dspo ? .dspo : .dpo)
        if unconditional {
            let expected = try tensor("unconditional").item
            XCTAssertGreaterThan(expected, 1e-5, "the term must be away from 0 to test it")
            XCTAssertEqual(terms.unconditional, expected, accuracy: 1e-4 * expected)
        }
        terms.loss.backward()
        XCTAssertEqual(terms.loss.item, try tensor("loss").item, accuracy: 1e-4)
        let preference = try tensor(dspo ? "dspo" : "dpo").item
        XCTAssertEqual(terms.preference, preference, accuracy: 1e-4 * max(1, preference))
        XCTAssertEqual(
            terms.prior, try tensor("prior").item, accuracy: 1e-4 * max(1, try tensor("prior").item)
        )
        if !dspo {
            XCTAssertNotEqual(
                terms.preference, Float(log(2.0)), accuracy: 1e-3,
                "the DPO term must be away from log 2 to test it")
        }
        var largest: Float = 0
        for (name, parameter) in lora.namedParameters {
            let expected = try tensor("grad.unet." + name).scalars
            let got = parameter.grad!.scalars
            let scale = max(expected.map(abs).max()!, 1e-3)
            for (g, e) in zip(got, expected) { largest = max(largest, abs(g - e) / scale) }
        }
        print("DUO step parity (\(file)): largest relative gradient difference \(largest)")
        XCTAssertLessThan(largest, 1e-4)
    }
}
