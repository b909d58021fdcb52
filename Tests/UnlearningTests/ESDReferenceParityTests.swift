import Diffusion
import Formats
import Foundation
import Tensor
import TestSupport
import XCTest

@testable import Unlearning

/// ESD as its reference trains it, against the reference's own code on the tiny pipeline
/// (tools/make_esd_reference_fixture.py; rohitgandikota/erasing at b8aeab6,
/// train-esd.py): its DDIMSampler's partial trajectory and its DDPM bins, its name
/// filter's parameter subsets, and two iterations (x_t, loss, gradient, Adam update) for
/// ESD-u (noxattn) and ESD-x (xattn) at full rank.
final class ESDReferenceParityTests: XCTestCase {
    static let fixtures = Bundle.module.resourcePath! + "/Fixtures/esd-reference"

    func reader(_ name: String) throws -> SafeTensorsReader {
        try SafeTensorsReader(path: Self.fixtures + "/" + name)
    }

    func tensor(_ file: SafeTensorsReader, _ name: String) throws -> Tensor {
        Tensor(try file.floats(name), shape: try file.info(name).shape)
    }

    func testTimestepBinsAreTheReferences() throws {
        let bins = try reader("trajectory.safetensors").floats("bins")
        for tEnc in 0..<50 {
            let bin = ESDTrajectory.timestepBin(tEnc: tEnc, ddimSteps: 50, trainTimesteps: 1000)
            XCTAssertEqual(
                [Float(bin.lowerBound), Float(bin.upperBound)],
                Array(bins[2 * tEnc..<2 * tEnc + 2]),
                "train-esd.py l.228-229 at t_enc \(tEnc)")
        }
        // Python's round is half to even: 1/16 · 1000 = 62.5 → 62, 3/16 · 1000 = 187.5 → 188.
        XCTAssertEqual(
            ESDTrajectory.timestepBin(tEnc: 1, ddimSteps: 16, trainTimesteps: 1000), 62..<125)
        XCTAssertEqual(
            ESDTrajectory.timestepBin(tEnc: 3, ddimSteps: 16, trainTimesteps: 1000), 188..<250)
    }

    /// x_t for several t_enc: the reference's sampler (its float64 schedule: 1e-4) and
    /// diffusers' DDIMScheduler over the same timesteps (float32 as ours: 1e-5).
    func testPartialTrajectoryMatchesTheReferenceSampler() throws {
        let file = try reader("trajectory.safetensors")
        let model = try StableDiffusion.load(directory: DUOStepParityTests.pipeline)
        let scheduler = try ESDTrainer.ddim(model: model, steps: 50)
        let start = try tensor(file, "start_code")
        for tEnc in try file.floats("t_enc").map({ Int($0) }) {
            let xt = ESDTrajectory.sample(
                unet: model.unet, scheduler: scheduler,
                draw: .init(tEnc: tEnc, timestep: 0, startCode: start),
                concept: try tensor(file, "concept"), empty: try tensor(file, "empty"), guidance: 3)
            assertClose(
                xt, try file.floats("x_t_diffusers.\(tEnc)"), rtol: 1e-5, atol: 1e-5,
                "diffusers DDIMScheduler, t_enc \(tEnc)")
            assertClose(
                xt, try file.floats("x_t.\(tEnc)"), rtol: 1e-4, atol: 1e-4,
                "the reference's DDIMSampler, t_enc \(tEnc)")
        }
    }

    func testTrainMethodsPickTheReferencesParameters() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.fixtures + "/subsets.json"))
        let subsets = try JSONDecoder().decode([String: [String]].self, from: data)
        let model = try StableDiffusion.load(directory: DUOStepParityTests.pipeline)
        for method in ESDTrainMethod.allCases {
            XCTAssertEqual(
                model.unet.namedParameters.map(\.0).filter(method.trains).sorted(),
                subsets[method.rawValue]?.sorted(),
                "train-esd.py's filter for \(method.rawValue), in diffusers' keys")
        }
    }

    func testESDuIterationsMatchTheReference() throws { try checkIterations(.noxattn) }

    func testESDxIterationsMatchTheReference() throws { try checkIterations(.xattn) }

    /// Two iterations from the original weights: the second samples x_t with the updated
    /// model and takes e_0, e_p from the original, so a mix-up of the two shows.
    func checkIterations(_ method: ESDTrainMethod) throws {
        let file = try reader("iteration-\(method.rawValue).safetensors")
        let trajectory = try reader("trajectory.safetensors")
        let model = try StableDiffusion.load(directory: DUOStepParityTests.pipeline)
        let weights = FullRankSubset(unet: model.unet, method: method)
        let originals = weights.namedParameters.map { $0.1.copy() }
        let optimizer = ESDTrainer.adam(weights)
        var settings = ESDSettings(prompt: "unused: the contexts are the fixture's")
        settings.learningRate = Float(file.metadata["lr"]!)!
        settings.negativeGuidance = Float(file.metadata["eta"]!)!
        settings.startGuidance = Float(file.metadata["start_guidance"]!)!
        let scheduler = try ESDTrainer.ddim(model: model, steps: settings.ddimSteps)
        for i in 1...2 {
            let draw = ESDTrajectory.Draw(
                tEnc: Int(try file.floats("t_enc.\(i)")[0]),
                timestep: Int(try file.floats("timestep.\(i)")[0]),
                startCode: try tensor(file, "start_code.\(i)"))
            let values = ESDTrainer.iterate(
                unet: model.unet, weights: weights, optimizer: optimizer, scheduler: scheduler,
                draw: draw, concept: try tensor(trajectory, "concept"),
                empty: try tensor(trajectory, "empty"), settings: settings)
            let loss = try file.floats("loss.\(i)")[0]
            XCTAssertEqual(values[0].1, loss, accuracy: 1e-4 * loss, "loss of iteration \(i)")
            if i == 1 {
                let gradients = weights.namedParameters.map { ($0.0, $0.1.grad!) }
                try compare(file, "grad.1", gradients, "gradient", scaled: true)
            }
            let deltas = zip(weights.namedParameters, originals).map { ($0.0, $0.1 - $1) }
            try compare(file, "delta.\(i)", deltas, "update after iteration \(i)")
        }
    }

    /// Each tensor's kept first elements and its norm: elements to 1e-4 of the tensor's
    /// largest (`scaled`) or to 1e-4 outright, norms to 1e-4.
    ///
    /// The updates are compared as values (1e-4, absolute): Adam moves an element by
    /// lr · m̂ / (√v̂ + 1e-8), so one whose gradient is a few 1e-8 (noise beside the largest)
    /// moves by a fraction of lr that rounding decides. The update's norm is held to 1e-4.
    func compare(
        _ file: SafeTensorsReader, _ prefix: String, _ tensors: [(String, Tensor)],
        _ what: String, scaled: Bool = false
    ) throws {
        let kept = Int(file.metadata["prefix"]!)!
        let names = file.names.filter { $0.hasPrefix(prefix + ".") && !$0.hasSuffix(".norm") }
        XCTAssertEqual(names.count, tensors.count, "\(what): one per trained tensor")
        var largest: Float = 0
        for (name, tensor) in tensors {
            let expected = try file.floats("\(prefix).\(name)")
            let got = Array(tensor.scalars.prefix(kept))
            let scale = scaled ? max(expected.map(abs).max()!, 1e-6) : 1
            for (g, e) in zip(got, expected) { largest = max(largest, abs(g - e) / scale) }
            let norm = try file.floats("\(prefix).\(name).norm")[0]
            let ours = tensor.scalars.map { Double($0) * Double($0) }.reduce(0, +).squareRoot()
            XCTAssertEqual(Float(ours), norm, accuracy: 1e-4 * norm, "\(what): norm of \(name)")
        }
        XCTAssertLessThan(largest, 1e-4, "\(what): largest difference")
    }
}
