import Diffusion
import Formats
import Foundation
import Tensor
import XCTest

@testable import Unlearning

/// ESD's trainer around the iteration `ESDReferenceParityTests` checks: its draws cover the
/// whole schedule, frozen layers get no gradient, the frozen original is had back exactly,
/// and a stopped run resumes to the same weights.
final class ESDTrainerTests: XCTestCase {
    var folder = ""

    override func setUpWithError() throws {
        folder =
            FileManager.default.temporaryDirectory.appendingPathComponent("esd-\(UUID())")
            .path
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: folder) }

    /// train-esd.py l.226-231: t_enc uniform over the 50 DDIM steps, the timestep in its bin,
    /// so every part of [0, 1000) is trained.
    func testDrawsCoverEveryDDIMStepAndTheWholeSchedule() {
        let key = RandomKey(seed: 5)
        var seen = Set<Int>()
        var timesteps: [Int] = []
        for i in 0..<2000 {
            let draw = ESDTrajectory.draw(
                ddimSteps: 50, trainTimesteps: 1000, shape: [1, 1, 2, 2],
                key: key.fold(in: UInt64(i)))
            XCTAssertTrue((0..<50).contains(draw.tEnc))
            XCTAssertTrue(
                ESDTrajectory.timestepBin(tEnc: draw.tEnc, ddimSteps: 50, trainTimesteps: 1000)
                    .contains(draw.timestep), "timestep \(draw.timestep) for t_enc \(draw.tEnc)")
            seen.insert(draw.tEnc)
            timesteps.append(draw.timestep)
        }
        XCTAssertEqual(seen.count, 50, "every t_enc is drawn")
        XCTAssertLessThan(timesteps.min()!, 20)
        XCTAssertGreaterThanOrEqual(timesteps.max()!, 980)
        let again = ESDTrajectory.draw(
            ddimSteps: 50, trainTimesteps: 1000, shape: [1, 1, 2, 2], key: key.fold(in: 7))
        XCTAssertEqual(
            again.timestep,
            ESDTrajectory.draw(
                ddimSteps: 50, trainTimesteps: 1000, shape: [1, 1, 2, 2], key: key.fold(in: 7)
            ).timestep)
    }

    /// The reference's sampler runs N − max(t_enc, 1) of the timesteps after the first.
    func testSamplingStopsWhereTheReferencesSamplerStops() {
        let list = (0..<50).reversed().map { $0 * 20 + 1 }  // 981 ... 1
        XCTAssertEqual(ESDTrajectory.samplingTimesteps(tEnc: 49, schedulerTimesteps: list), [961])
        XCTAssertEqual(ESDTrajectory.samplingTimesteps(tEnc: 0, schedulerTimesteps: list).count, 49)
        XCTAssertEqual(
            ESDTrajectory.samplingTimesteps(tEnc: 0, schedulerTimesteps: list),
            ESDTrajectory.samplingTimesteps(tEnc: 1, schedulerTimesteps: list))
        XCTAssertEqual(
            ESDTrajectory.samplingTimesteps(tEnc: 30, schedulerTimesteps: list).last, 581)
    }

    func testFrozenLayersGetNoGradientAndTheOriginalComesBackExactly() throws {
        let model = try StableDiffusion.load(directory: DUOStepParityTests.pipeline)
        let weights = FullRankSubset(unet: model.unet, method: .xattn)
        let before = model.unet.namedParameters.map { $0.1.scalars }
        var settings = ESDSettings(prompt: "")
        settings.learningRate = 1e-3
        settings.ddimSteps = 4
        let scheduler = try ESDTrainer.ddim(model: model, steps: 4)
        let empty = model.encode([""])
        _ = ESDTrainer.iterate(
            unet: model.unet, weights: weights, optimizer: ESDTrainer.adam(weights),
            scheduler: scheduler,
            draw: ESDTrajectory.draw(
                ddimSteps: 4, trainTimesteps: 1000, shape: [1, 4, 8, 8], key: RandomKey(seed: 1)),
            concept: Tensor.randn(empty.shape, key: RandomKey(seed: 2)), empty: empty,
            settings: settings)
        let trained = Set(weights.namedParameters.map(\.0))
        for ((name, parameter), original) in zip(model.unet.namedParameters, before) {
            if trained.contains(name) {
                XCTAssertNotNil(parameter.grad, name)
                XCTAssertNotEqual(parameter.scalars, original, "\(name) is trained")
                let inside = weights.withOriginal { parameter.scalars }
                XCTAssertEqual(inside, original, "\(name): the original, bit for bit")
            } else {
                XCTAssertNil(parameter.grad, "\(name) is frozen: no weight gradient")
                XCTAssertFalse(parameter.requiresGrad, name)
                XCTAssertEqual(parameter.scalars, original, name)
            }
        }
        XCTAssertEqual(weights.namedParameters.count, 20, "attn2 q, k, v, out and its bias, x4")
    }

    func trainer(_ weights: ESDSettings.Weights, directory: String) throws -> ESDTrainer {
        var settings = ESDSettings(prompt: "")
        settings.weights = weights
        settings.iterations = 4
        settings.checkpointEvery = 2
        settings.ddimSteps = 4
        settings.learningRate = 1e-3
        settings.seed = 3
        return try ESDTrainer(
            model: try StableDiffusion.load(directory: DUOStepParityTests.pipeline),
            settings: settings, directory: directory, identity: [])
    }

    func checkResume(_ weights: ESDSettings.Weights) throws {
        let straight = try trainer(weights, directory: folder + "/straight")
        try FileManager.default.createDirectory(
            atPath: folder + "/straight", withIntermediateDirectories: true)
        XCTAssertEqual(try straight.train(resume: false), 4)
        let stopped = folder + "/stopped"
        try FileManager.default.createDirectory(atPath: stopped, withIntermediateDirectories: true)
        XCTAssertEqual(
            try trainer(weights, directory: stopped).train(resume: false) { $0.step < 2 }, 2)
        let resumed = try trainer(weights, directory: stopped)
        XCTAssertEqual(try resumed.train(resume: true), 4)
        XCTAssertEqual(resumed.resumedFrom, 2)
        for ((name, a), (_, b)) in zip(
            straight.weights.namedParameters, resumed.weights.namedParameters)
        {
            XCTAssertEqual(a.scalars, b.scalars, "\(name): the uninterrupted run's, bit for bit")
        }
        func log(_ directory: String) throws -> [String] {
            try String(contentsOfFile: directory + "/train.jsonl", encoding: .utf8)
                .replacingOccurrences(
                    of: #", "seconds": [0-9.]+"#, with: "", options: .regularExpression
                )
                .split(separator: "\n").map(String.init)
        }
        XCTAssertEqual(try log(stopped), try log(folder + "/straight"))
        XCTAssertEqual(try log(stopped).count, 4)
    }

    func testAStoppedFullRankRunResumesToTheSameWeights() throws { try checkResume(.fullRank) }

    func testAStoppedLoRARunResumesToTheSameWeights() throws {
        try checkResume(.lora(rank: 2, alpha: 2, targets: [.crossAttention]))
    }

    /// A resume with other settings is refused, naming the setting.
    func testResumingWithOtherSettingsIsRefused() throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        _ = try trainer(.fullRank, directory: folder).train(resume: false) { $0.step < 2 }
        var other = try trainer(.fullRank, directory: folder).settings
        other.negativeGuidance = 2
        let changed = try ESDTrainer(
            model: try StableDiffusion.load(directory: DUOStepParityTests.pipeline),
            settings: other, directory: folder, identity: [])
        XCTAssertThrowsError(try changed.train(resume: true)) {
            XCTAssertTrue("\($0)".contains("negative_guidance 1"), "\($0)")
        }
        XCTAssertEqual(
            try changed.folderConflict(replacing: false).map { $0.contains("negative_guidance") },
            true)
    }
}
