import Diffusion
import Formats
import Foundation
import Tensor
import TestSupport
import XCTest

/// PNDMScheduler against diffusers 0.42's own class, on the fixtures of
/// tools/make_scheduler_fixtures.py (Fixtures/schedulers/pndm/): Stable Diffusion 1.x's
/// shipped config (PLMS, skip_prk_steps true), the Runge–Kutta start (skip_prk_steps
/// false) and v-prediction with trailing spacing.
///
/// Precision. A step rounds about eight float32 operations in diffusers' order (the
/// multistep sum of up to four outputs, the transfer part's two products, its division and
/// difference), each within ε/2 of its result; the square roots of the step's coefficients
/// may also come out 1 ulp apart (torch's are not always correctly rounded, see
/// SchedulerTests). On samples of magnitude |x| that bounds a step's difference by about
/// 5ε·|x|, so each step must be within `stepTolerance` = 8ε (9.5e-7) relative to
/// max(1, |x|). Whole runs carry every step's difference on, growing (see
/// `testFullRunsMatchDiffusers`).
final class PNDMSchedulerTests: XCTestCase {
    static let folder = SchedulerTests.root + "/pndm"
    static let reference = try! SafeTensorsReader(path: folder + "/reference.safetensors")
    static let stepTolerance = 8 * Float32Rounding.epsilon

    struct Runs: Decodable {
        struct Run: Decodable { let config: String, steps: Int }
        struct Img2Img: Decodable { let steps: Int, strength: Double, timesteps: [Int] }
        let configs: [String: String]
        let runs: [String: Run]
        let timesteps: [String: [String: [Int]]]
        let img2img: [String: [Img2Img]]
    }

    static let expected: Runs = {
        let data = try! Data(contentsOf: URL(fileURLWithPath: folder + "/runs.json"))
        return try! JSONDecoder().decode(Runs.self, from: data)
    }()

    /// A recorded config as diffusers saved it; with `exactBetas`, diffusers' own float32
    /// betas as trained betas.
    func config(_ name: String, exactBetas: Bool = false) throws -> SchedulerConfig {
        var config = try SchedulerConfig(
            contentsOf: Self.folder + "/" + Self.expected.configs[name]!, for: .pndm)
        if exactBetas { config.trainedBetas = try Self.reference.floats("\(name).betas") }
        return config
    }

    func tensor(_ name: String) throws -> Tensor {
        Tensor(try Self.reference.floats(name), shape: try Self.reference.info(name).shape)
    }

    /// A stacked [N, ...] reference tensor as N tensors.
    func slices(_ name: String) throws -> [Tensor] {
        let stacked = try tensor(name)
        return split(stacked, sizes: Array(repeating: 1, count: stacked.shape[0]), axis: 0)
            .map { $0.reshaped(Array(stacked.shape.dropFirst())) }
    }

    // MARK: timesteps

    func testTimestepsMatchDiffusers() throws {
        for (name, table) in Self.expected.timesteps {
            var scheduler = PNDMScheduler(config: try config(name))
            for (count, expected) in table {
                try scheduler.setTimesteps(Int(count)!)
                XCTAssertEqual(scheduler.timesteps, expected, "\(name) set_timesteps(\(count))")
                XCTAssertEqual(scheduler.numInferenceSteps, Int(count))
            }
        }
        // SD's 50 steps: the second timestep twice, 51 model evaluations in all.
        var sd = PNDMScheduler(config: try config("sd"))
        try sd.setTimesteps(50)
        XCTAssertEqual(Array(sd.timesteps.prefix(4)), [981, 961, 961, 941])
        XCTAssertEqual(sd.timesteps.count, 51)
    }

    /// diffusers' img2img get_timesteps skips the first N − int(N · strength) entries of
    /// PNDM's longer list, keeping the rest.
    func testImageToImageTimestepsMatchDiffusers() throws {
        for (name, cases) in Self.expected.img2img {
            var scheduler = PNDMScheduler(config: try config(name))
            for img2img in cases {
                try scheduler.setTimesteps(img2img.steps)
                XCTAssertEqual(
                    try scheduler.timesteps(strength: img2img.strength), img2img.timesteps,
                    "\(name) img2img get_timesteps(\(img2img.steps), strength \(img2img.strength))")
            }
        }
    }

    // MARK: steps

    /// Replays run `name` (start sample and model outputs) and checks prev_sample after
    /// every step within `tolerance` × max(1, |x|). Our own samples are chained unless
    /// `teacherForced`, which starts each step from diffusers' previous sample (the model
    /// outputs, and so `ets`, are the recorded ones either way). Returns the largest
    /// absolute difference.
    @discardableResult
    func replay(
        _ name: String, exactBetas: Bool, teacherForced: Bool, tolerance: Float,
        file: StaticString = #filePath, line: UInt = #line
    ) throws -> Float {
        let run = Self.expected.runs[name]!
        var scheduler = PNDMScheduler(config: try config(run.config, exactBetas: exactBetas))
        try scheduler.setTimesteps(run.steps)
        let outputs = try slices("\(name).model_outputs")
        let expected = try slices("\(name).prev_samples")
        XCTAssertEqual(scheduler.timesteps.count, outputs.count, name, file: file, line: line)
        var sample = try tensor("\(name).start")
        var worst: Float = 0
        for (i, t) in scheduler.timesteps.enumerated() {
            if teacherForced && i > 0 { sample = expected[i - 1] }
            sample =
                scheduler.step(modelOutput: outputs[i], timestep: t, sample: sample)
                .prevSample
            let differences = zip(sample.scalars, expected[i].scalars).map { abs($0 - $1) }
            worst = max(worst, differences.max()!)
            assertClose(
                sample, expected[i].scalars, rtol: tolerance, atol: tolerance,
                "\(name) step \(i) (t=\(t)) prev_sample vs diffusers", file: file, line: line)
        }
        XCTAssertEqual(scheduler.counter, outputs.count, name, file: file, line: line)
        return worst
    }

    /// Every step from diffusers' own previous sample, with its float32 betas: within 8ε
    /// relative to max(1, |x|) (measured: at most 4.8e-7 absolute, 2 ulps of the samples'
    /// largest values, in each of the four runs).
    func testEachStepMatchesDiffusers() throws {
        for name in Self.expected.runs.keys.sorted() {
            let worst = try replay(
                name, exactBetas: true, teacherForced: true, tolerance: Self.stepTolerance)
            print("PNDM \(name), each step from diffusers' sample: max abs difference \(worst)")
        }
    }

    /// Whole runs from the config alone, our samples chained. A difference made at step t
    /// reaches the end multiplied by the product of the later steps' √(ᾱ_{t'} / ᾱ_t), that
    /// is √(ᾱ_end / ᾱ_t): about 14 from SD's first timestep 981 to its last, 1. So a few
    /// ulps early on, and the steps' ulps together, make some 1e-6 at the end: within 1e-5
    /// relative to max(1, |x|) (measured: 3.1e-6 over SD's 50 steps, 6.3e-6 over its 20,
    /// 1.5e-6 for the Runge–Kutta start, 1.2e-6 for v-prediction).
    func testFullRunsMatchDiffusers() throws {
        for name in Self.expected.runs.keys.sorted() {
            let worst = try replay(name, exactBetas: false, teacherForced: false, tolerance: 1e-5)
            print("PNDM \(name), whole run: max abs difference \(worst)")
        }
    }

    /// setTimesteps starts a new run: the same scheduler value replays a run exactly.
    func testSetTimestepsRestartsTheRun() throws {
        var scheduler = PNDMScheduler(config: .stableDiffusion)
        let outputs = try slices("sd_20.model_outputs")
        func run() throws -> [Float] {
            try scheduler.setTimesteps(20)
            var sample = try tensor("sd_20.start")
            for (i, t) in scheduler.timesteps.enumerated() {
                sample =
                    scheduler.step(modelOutput: outputs[i], timestep: t, sample: sample)
                    .prevSample
            }
            return sample.scalars
        }
        let first = try run()
        XCTAssertEqual(try run(), first)
        XCTAssertEqual(scheduler.ets.count, 4, "PLMS keeps the last four outputs")
    }

    // MARK: configs

    /// SD's shipped PNDM config is the Stable Diffusion preset (PNDM never clips).
    func testShippedConfigIsTheStableDiffusionPreset() throws {
        XCTAssertEqual(try config("sd"), .stableDiffusion)
    }

    /// Keys a PNDM config leaves out take PNDMScheduler's defaults, not DDIM's.
    func testDefaultsAreDiffusersPNDMs() throws {
        let path = try writeConfig(#"{"_class_name": "PNDMScheduler"}"#)
        let config = try SchedulerConfig(contentsOf: path, for: .pndm)
        XCTAssertFalse(config.setAlphaToOne)
        XCTAssertFalse(config.skipPrkSteps)
        XCTAssertFalse(config.clipSample)
        XCTAssertEqual(config.stepsOffset, 0)
    }

    func testSamplePredictionIsRefusedInOneLine() throws {
        let path = try writeConfig(
            #"{"_class_name": "PNDMScheduler", "prediction_type": "sample"}"#)
        XCTAssertThrowsError(try SchedulerConfig(contentsOf: path, for: .pndm)) { error in
            let message = String(describing: error)
            XCTAssertFalse(message.contains("\n"), message)
            for part in [path, "'prediction_type'", "epsilon", "v_prediction", "sample"] {
                XCTAssertTrue(message.contains(part), "'\(message)' names \(part)")
            }
        }
        XCTAssertNoThrow(try SchedulerConfig(contentsOf: path, for: .ddim))
    }

    /// The Runge–Kutta start takes three steps of the N: fewer than 4 cannot hold it.
    func testRungeKuttaStartNeedsFourSteps() throws {
        var scheduler = PNDMScheduler(config: try config("prk"))
        XCTAssertThrowsError(try scheduler.setTimesteps(3)) { error in
            XCTAssertTrue(String(describing: error).contains("skip_prk_steps"), "\(error)")
        }
        XCTAssertNoThrow(try scheduler.setTimesteps(4))
        XCTAssertEqual(scheduler.prkTimesteps.count, 12)
    }

    func writeConfig(_ text: String) throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("duo-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("scheduler_config.json").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    // MARK: sampling

    /// The tiny pipeline with SD's PNDM config in place of its DDIM one.
    static func pndmModel() throws -> StableDiffusion {
        let pipeline = ModelParityTests.models + "/pipeline"
        return StableDiffusion(
            directory: pipeline,
            tokenizer: try CLIPTokenizer(directory: pipeline + "/tokenizer"),
            textEncoder: try CLIPTextModel.load(directory: pipeline + "/text_encoder"),
            unet: try UNet2DConditionModel.load(directory: pipeline + "/unet"),
            vae: try AutoencoderKL.load(directory: pipeline + "/vae"),
            schedulerConfigPath: Self.folder + "/scheduler_config.json")
    }

    /// 10 PLMS steps with guidance 7.5 from the latents of diffusers' StableDiffusionPipeline
    /// run with SD's PNDM config (pipeline.safetensors): the same image, to the bar of
    /// SamplingParityTests (2/255 on all but a handful of values).
    func testPipelineWithPNDMMatchesDiffusers() throws {
        let model = try Self.pndmModel()
        XCTAssertEqual(
            model.defaultSchedulerKind, .pndm, "a PNDMScheduler folder samples with PNDM")
        var scheduler = try model.scheduler(nil)
        XCTAssertTrue(scheduler is PNDMScheduler)
        try scheduler.setTimesteps(10)
        let ids = ModelParityTests.ids
        let (condition, unconditional) = GradMode.withNoGrad {
            (
                model.textEncoder(try! ids("pipeline.cond_ids")),
                model.textEncoder(try! ids("pipeline.uncond_ids"))
            )
        }
        let latents = GuidedDenoising.run(
            unet: model.unet, latents: try ModelParityTests.tensor("pipeline.latents"),
            condition: condition, unconditional: unconditional, guidance: 7.5,
            timesteps: scheduler.timesteps
        ) { sample, noise, t, _ in
            scheduler.step(modelOutput: noise, timestep: t, sample: sample, varianceNoise: nil)
                .prevSample
        }
        let image = GuidedDenoising.toUnitRange(model.decode(latents)).scalars
        let expected = try SafeTensorsReader(path: Self.folder + "/pipeline.safetensors")
            .floats("image")
        XCTAssertEqual(image.count, expected.count)
        let off = zip(image, expected).filter { abs($0 - $1) > 2 / 255 }.count
        let largest = zip(image, expected).map { abs($0 - $1) }.max()!
        print("PNDM sampling parity: \(off) of \(expected.count) beyond 2/255, largest \(largest)")
        XCTAssertLessThanOrEqual(off, 5)
        let inside = expected.filter { $0 > 0.01 && $0 < 0.99 }.count
        XCTAssertGreaterThan(inside, expected.count / 2, "\(inside) of \(expected.count) unclamped")
    }

    /// `--scheduler pndm` through TextToImage end to end, on both starts: the PNDM folder
    /// (PLMS) and the tiny pipeline's DDIM config read as PNDM (no skip_prk_steps key:
    /// diffusers' default, the Runge–Kutta start). A sharded batch steps one scheduler per
    /// shard, so each image is still the one sampled alone.
    func testTextToImageSamplesWithPNDM() throws {
        let ddimFolder = try StableDiffusion.load(directory: ModelParityTests.models + "/pipeline")
        for model in [try Self.pndmModel(), ddimFolder] {
            var scheduler = try model.scheduler(.pndm)
            try scheduler.setTimesteps(4)
            var parameters = TextToImage.Parameters(prompt: "a red circle")
            parameters.steps = 4
            parameters.scheduler = .pndm
            var reported: [(Int, Int)] = []
            let image = try TextToImage.sample(model: model, parameters: parameters) {
                reported.append(($0, $1))
            }
            XCTAssertEqual(image.shape, [1, 3, 16, 16], "sample size 8 × the VAE's factor 2")
            XCTAssertTrue(image.scalars.allSatisfy { $0 >= 0 && $0 <= 1 })
            XCTAssertEqual(reported.last?.0, scheduler.timesteps.count, "one report per step")
            XCTAssertEqual(reported.last?.1, scheduler.timesteps.count)

            let requests = [1, 2].map {
                TextToImage.Request(prompt: "shape \($0)", key: RandomKey(seed: UInt64($0)))
            }
            let batch = try TextToImage.sample(
                model: model, requests: requests, steps: 4, scheduler: .pndm)
            for (i, request) in requests.enumerated() {
                let alone = try TextToImage.sample(
                    model: model, requests: [request], steps: 4, scheduler: .pndm)
                assertClose(
                    batch.slice(batch: i).scalars, alone.scalars, rtol: 1e-4, atol: 1e-4,
                    "image \(i)")
            }
        }
    }
}
