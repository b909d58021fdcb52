import Diffusion
import Formats
import Foundation
import Tensor
import TestSupport
import XCTest

/// DDIMScheduler and DDPMScheduler against diffusers 0.42's own classes, on the fixtures of
/// tools/make_scheduler_fixtures.py (Fixtures/schedulers/<case>/).
///
/// Precision. We follow diffusers' float32 arithmetic op for op, and given the same square
/// roots the runs match bit for bit. They differ only by ulps, from two sources in torch's
/// CPU kernels: torch.linspace's vectorized kernel rounds some betas 1 ulp away from its
/// scalar formula (which we follow), and torch.sqrt (MKL's vector math on the machine that
/// made the fixtures) is not correctly rounded: 226 of the 1000 √(1 − ᾱ_t) of SD's schedule
/// are 1 ulp off the IEEE square root that Float.squareRoot() gives. Each step is then
/// within 1e-6 of diffusers'; whole runs, where those ulps compound, within 2e-5.
final class SchedulerTests: XCTestCase {
    static let root = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!
        .appendingPathComponent("schedulers").path
    static let cases = ["sd", "v_trailing", "linspace_clip", "cosine_sample", "zero_snr"]
    /// The classes each case records (PNDM's runs are PNDMSchedulerTests').
    static let kinds: [SchedulerKind] = [.ddim, .ddpm]

    struct Expected: Decodable {
        struct Runs: Decodable { let ddim: Int, ddpm: Int, ddim_eta: Int? }
        struct Img2Img: Decodable { let steps: Int, strength: Double, timesteps: [Int] }
        let runs: Runs
        let eta: Float?
        let timesteps: [String: [String: [Int]]]
        let img2img: [String: [Img2Img]]
        let add_noise_timesteps: [Int]
    }

    /// One recorded case: its configs, expectations and reference tensors.
    struct Case {
        let name: String
        let expected: Expected
        let reference: SafeTensorsReader

        init(_ name: String) throws {
            self.name = name
            let data = try Data(contentsOf: URL(fileURLWithPath: "\(root)/\(name)/expected.json"))
            expected = try JSONDecoder().decode(Expected.self, from: data)
            reference = try SafeTensorsReader(path: "\(root)/\(name)/reference.safetensors")
        }

        func configPath(_ kind: SchedulerKind) -> String {
            "\(root)/\(name)/\(kind == .ddim ? "ddim" : "ddpm")/scheduler_config.json"
        }

        /// The config as diffusers saved it; with `exactBetas`, diffusers' own float32 betas
        /// as trained betas (already rescaled, so no second rescale).
        func config(_ kind: SchedulerKind, exactBetas: Bool) throws -> SchedulerConfig {
            var config = try SchedulerConfig(contentsOf: configPath(kind), for: kind)
            if exactBetas {
                config.trainedBetas = try reference.floats("betas")
                config.rescaleBetasZeroSNR = false
            }
            return config
        }

        func tensor(_ name: String) throws -> Tensor {
            Tensor(try reference.floats(name), shape: try reference.info(name).shape)
        }

        /// A stacked [N, ...] reference tensor as N tensors.
        func slices(_ name: String) throws -> [Tensor] {
            let stacked = try tensor(name)
            return split(stacked, sizes: Array(repeating: 1, count: stacked.shape[0]), axis: 0)
                .map { $0.reshaped(Array(stacked.shape.dropFirst())) }
        }
    }

    func allCases() throws -> [Case] { try Self.cases.map { try Case($0) } }

    /// Replays run `prefix` (start sample, model outputs, noise) through `scheduler` and
    /// checks prev_sample after every step. Our own samples are chained unless
    /// `teacherForced`, which starts each step from diffusers' previous sample instead.
    /// Returns the largest absolute difference seen.
    @discardableResult
    func replay(
        _ scheduler: some DiffusionScheduler, _ run: String, of fixture: Case, atol: Float,
        teacherForced: Bool = false, file: StaticString = #filePath, line: UInt = #line
    ) throws -> Float {
        let outputs = try fixture.slices("\(run).model_outputs")
        let expected = try fixture.slices("\(run).prev_samples")
        let noises =
            fixture.reference.contains("\(run).variance_noise")
            ? try fixture.slices("\(run).variance_noise") : nil
        XCTAssertEqual(
            scheduler.timesteps.count, outputs.count, "\(fixture.name) \(run) steps",
            file: file, line: line)
        var scheduler = scheduler
        var sample = try fixture.tensor("\(run).start")
        var worst: Float = 0
        for (i, t) in scheduler.timesteps.enumerated() {
            if teacherForced && i > 0 { sample = expected[i - 1] }
            let output = scheduler.step(
                modelOutput: outputs[i], timestep: t, sample: sample, varianceNoise: noises?[i])
            sample = output.prevSample
            worst = max(worst, zip(sample.scalars, expected[i].scalars).map { abs($0 - $1) }.max()!)
            assertClose(
                sample, expected[i].scalars, rtol: 0, atol: atol,
                "\(fixture.name) \(run) step \(i) (t=\(t)) prev_sample vs diffusers",
                file: file, line: line)
        }
        return worst
    }

    // MARK: tables and timesteps

    func testAlphasCumprodMatchDiffusers() throws {
        for fixture in try allCases() {
            for kind in Self.kinds {
                let ours = NoiseSchedule(config: try fixture.config(kind, exactBetas: false))
                // Linear betas within 1 ulp of torch.linspace's vectorized ones, scaled-linear
                // ones (squares) within 3, cosine ones equal. The zero-SNR rescale takes
                // torch.sqrt of ᾱ and ends in β = 1 − ᾱ_t/ᾱ_{t−1}, a difference of numbers
                // near 1: there betas differ by up to 2.9e-6, and ᾱ by 3.8e-6 relative.
                let zeroSNR = fixture.name == "zero_snr"
                assertClose(
                    ours.betas, try fixture.reference.floats("betas"), rtol: 4e-7,
                    atol: zeroSNR ? 5e-6 : 0, "\(fixture.name) \(kind) betas vs diffusers")
                // ᾱ: the betas' ulps add up to a few ulp (measured: at most 2.3e-7 relative).
                assertClose(
                    ours.alphasCumprod, try fixture.reference.floats("alphas_cumprod"),
                    rtol: zeroSNR ? 1e-5 : 5e-7, atol: 0,
                    "\(fixture.name) \(kind) alphas_cumprod vs diffusers")
                // Given diffusers' betas, the cumulative product is its own bit for bit.
                let exact = NoiseSchedule(config: try fixture.config(kind, exactBetas: true))
                XCTAssertEqual(
                    exact.alphasCumprod, try fixture.reference.floats("alphas_cumprod"),
                    "\(fixture.name) \(kind) alphas_cumprod from diffusers' betas")
            }
        }
    }

    func testZeroTerminalSNRReachesZero() throws {
        let schedule = NoiseSchedule(config: try Case("zero_snr").config(.ddim, exactBetas: false))
        XCTAssertEqual(schedule.alphasCumprod.last, 0, "ᾱ_T after the zero-SNR rescale")
    }

    func testTimestepsMatchDiffusers() throws {
        for fixture in try allCases() {
            for kind in Self.kinds {
                let key = kind == .ddim ? "ddim" : "ddpm"
                var scheduler = makeScheduler(kind, try fixture.config(kind, exactBetas: false))
                for (count, expected) in fixture.expected.timesteps[key]! {
                    try scheduler.setTimesteps(Int(count)!)
                    XCTAssertEqual(
                        scheduler.timesteps, expected,
                        "\(fixture.name) \(key) set_timesteps(\(count))")
                }
                for img2img in fixture.expected.img2img[key]! {
                    try scheduler.setTimesteps(img2img.steps)
                    XCTAssertEqual(
                        try scheduler.timesteps(strength: img2img.strength),
                        img2img.timesteps,
                        "\(fixture.name) \(key) img2img get_timesteps(\(img2img.steps), "
                            + "strength \(img2img.strength))")
                }
            }
        }
    }

    func makeScheduler(_ kind: SchedulerKind, _ config: SchedulerConfig) -> any DiffusionScheduler {
        kind == .ddim ? DDIMScheduler(config: config) : DDPMScheduler(config: config)
    }

    // MARK: steps

    /// Every step of every recorded run, each from diffusers' own previous sample and with
    /// its float32 betas: within 1e-6 (measured: at most 4.8e-7, a few ulp).
    func testEachStepMatchesDiffusers() throws {
        for fixture in try allCases() {
            try replayAll(fixture, exactBetas: true, teacherForced: true, atol: 1e-6)
        }
    }

    /// Whole runs from the config alone, our samples chained: the ulp-level differences
    /// (torch's square roots, see the top) compound over a run; within 2e-5 (measured: at
    /// most 6.1e-6, DDPM over 10 linspace steps with clipping; 4.4e-6 for SD's 50 DDIM steps).
    func testFullRunsMatchDiffusers() throws {
        for fixture in try allCases() {
            try replayAll(fixture, exactBetas: false, teacherForced: false, atol: 2e-5)
        }
    }

    /// The case's DDIM run (and DDIM eta > 0 run, if recorded) and DDPM run.
    func replayAll(_ fixture: Case, exactBetas: Bool, teacherForced: Bool, atol: Float) throws {
        var ddim = DDIMScheduler(config: try fixture.config(.ddim, exactBetas: exactBetas))
        try ddim.setTimesteps(fixture.expected.runs.ddim)
        try replay(ddim, "ddim", of: fixture, atol: atol, teacherForced: teacherForced)
        if let steps = fixture.expected.runs.ddim_eta, let eta = fixture.expected.eta {
            try ddim.setTimesteps(steps)
            ddim.eta = eta
            try replay(ddim, "ddim_eta", of: fixture, atol: atol, teacherForced: teacherForced)
        }
        var ddpm = DDPMScheduler(config: try fixture.config(.ddpm, exactBetas: exactBetas))
        try ddpm.setTimesteps(fixture.expected.runs.ddpm)
        try replay(ddpm, "ddpm", of: fixture, atol: atol, teacherForced: teacherForced)
    }

    func testKeyedStepsAreReproducibleAndNoisyWhereTheyShouldBe() throws {
        var ddpm = DDPMScheduler(config: .stableDiffusion)
        try ddpm.setTimesteps(10)
        var ddim = DDIMScheduler(config: .stableDiffusion)
        try ddim.setTimesteps(10)
        let x = randomTensor([1, 4, 2, 2], seed: 1)
        let output = randomTensor([1, 4, 2, 2], seed: 2)
        func step(_ s: some DiffusionScheduler, _ t: Int, _ seed: UInt64) -> [Float] {
            var s = s
            return s.step(modelOutput: output, timestep: t, sample: x, key: RandomKey(seed: seed))
                .prevSample.scalars
        }
        XCTAssertEqual(step(ddpm, 901, 7), step(ddpm, 901, 7), "DDPM: same key, same step")
        XCTAssertNotEqual(step(ddpm, 901, 7), step(ddpm, 901, 8), "DDPM: another key, other noise")
        XCTAssertEqual(step(ddim, 901, 7), step(ddim, 901, 8), "DDIM eta 0 ignores the key")
        ddim.eta = 1
        XCTAssertNotEqual(step(ddim, 901, 7), step(ddim, 901, 8), "DDIM eta 1 draws noise")
    }

    // MARK: what training needs

    func testAddNoiseAndVelocityMatchDiffusers() throws {
        for fixture in try allCases() {
            let scheduler = DDIMScheduler(config: try fixture.config(.ddim, exactBetas: false))
            let original = try fixture.tensor("add_noise.original")
            let noise = try fixture.tensor("add_noise.noise")
            let timesteps = fixture.expected.add_noise_timesteps
            assertClose(
                scheduler.addNoise(original: original, noise: noise, timesteps: timesteps),
                try fixture.reference.floats("add_noise.output"), rtol: 0, atol: 1e-6,
                "\(fixture.name) add_noise at t = \(timesteps) vs diffusers")
            assertClose(
                scheduler.velocity(sample: original, noise: noise, timesteps: timesteps),
                try fixture.reference.floats("velocity.output"), rtol: 0, atol: 1e-6,
                "\(fixture.name) get_velocity at t = \(timesteps) vs diffusers")
        }
    }

    func testAddNoiseIsDifferentiable() {
        let scheduler = DDPMScheduler(config: .stableDiffusion)
        let inputs = [randomTensor([2, 3, 2, 2], seed: 3), randomTensor([2, 3, 2, 2], seed: 4)]
        checkGradients(inputs, "addNoise") {
            scheduler.addNoise(original: $0[0], noise: $0[1], timesteps: [10, 740])
        }
        checkGradients(inputs, "velocity") {
            scheduler.velocity(sample: $0[0], noise: $0[1], timesteps: [999])
        }
    }

    // MARK: configs

    /// The preset but for PNDM's skip_prk_steps, which a DDIM config lacks.
    func testStableDiffusionPresetIsTheSDConfig() throws {
        var config = try Case("sd").config(.ddim, exactBetas: false)
        config.skipPrkSteps = true
        XCTAssertEqual(config, .stableDiffusion)
    }

    /// SD 1.x folders ship a PNDMScheduler config; diffusers' from_config keeps its betas
    /// and takes DDIM's/DDPM's defaults for what PNDM lacks (clip_sample true: diffusers'
    /// SD pipelines then force it to false, and steps_offset to 1).
    func testPNDMConfigGivesWhatFromConfigGives() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Self.root + "/pndm/expected.json"))
        let derived = try JSONSerialization.jsonObject(with: data) as! [String: [String: Any]]
        for kind in Self.kinds {
            let theirs = derived[kind.rawValue]!
            let path = Self.root + "/pndm/scheduler_config.json"
            let config = try SchedulerConfig(contentsOf: path, for: kind)
            XCTAssertEqual(config.betaSchedule.rawValue, theirs["beta_schedule"] as? String)
            XCTAssertEqual(config.betaStart, theirs["beta_start"] as? Double)
            XCTAssertEqual(config.betaEnd, theirs["beta_end"] as? Double)
            XCTAssertEqual(config.clipSample, theirs["clip_sample"] as? Bool, "\(kind) clip_sample")
            XCTAssertEqual(config.stepsOffset, theirs["steps_offset"] as? Int)
            XCTAssertEqual(config.predictionType.rawValue, theirs["prediction_type"] as? String)
            XCTAssertEqual(config.timestepSpacing.rawValue, theirs["timestep_spacing"] as? String)
            if kind == .ddim {
                XCTAssertEqual(config.setAlphaToOne, theirs["set_alpha_to_one"] as? Bool)
            } else {
                XCTAssertEqual(config.varianceType.rawValue, theirs["variance_type"] as? String)
            }
            var scheduler = makeScheduler(kind, config)
            try scheduler.setTimesteps(50)
            XCTAssertEqual(scheduler.timesteps, theirs["timesteps_50"] as? [Int], "\(kind)")
        }
    }

    /// Writes the SD DDIM config with `from` replaced by `to` and returns its path.
    func editedConfig(_ from: String, _ to: String) throws -> String {
        let source = try Case("sd").configPath(.ddim)
        let text = try String(contentsOfFile: source, encoding: .utf8)
        XCTAssertTrue(text.contains(from), "fixture config has \(from)")
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("duo-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("scheduler_config.json").path
        try text.replacingOccurrences(of: from, with: to).write(
            toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func assertConfigFails(
        _ from: String, _ to: String, kind: SchedulerKind = .ddim, naming parts: [String],
        file: StaticString = #filePath, line: UInt = #line
    ) throws {
        let path = try editedConfig(from, to)
        XCTAssertThrowsError(
            try SchedulerConfig(contentsOf: path, for: kind), file: file, line: line
        ) { error in
            let message = String(describing: error)
            XCTAssertFalse(message.contains("\n"), "one line: \(message)", file: file, line: line)
            for part in [path] + parts {
                XCTAssertTrue(
                    message.contains(part), "'\(message)' names \(part)",
                    file: file, line: line)
            }
        }
    }

    func testConfigErrorsNameFileKeyExpectedAndFound() throws {
        try assertConfigFails(
            "\"scaled_linear\"", "\"sigmoid\"",
            naming: ["'beta_schedule'", "scaled_linear", "\"sigmoid\""])
        try assertConfigFails(
            "\"thresholding\": false", "\"thresholding\": true",
            naming: ["'thresholding'", "expected false", "found true"])
        try assertConfigFails(
            "\"epsilon\"", "\"eps\"",
            naming: ["'prediction_type'", "v_prediction", "\"eps\""])
        try assertConfigFails(
            "\"leading\"", "\"uniform\"",
            naming: ["'timestep_spacing'", "trailing", "\"uniform\""])
        try assertConfigFails(
            "\"DDIMScheduler\"", "\"FlowMatchEulerDiscreteScheduler\"",
            naming: ["'_class_name'", "PNDMScheduler", "FlowMatch"])
        try assertConfigFails(
            "\"trained_betas\": null", "\"trained_betas\": [0.1, 0.2]",
            naming: ["'trained_betas'", "expected 1000 betas", "found 2"])
        // A zero beta leaves a timestep without noise, where sampling divided by zero.
        try assertConfigFails(
            "\"trained_betas\": null",
            "\"trained_betas\": [" + Array(repeating: "0", count: 1000).joined(separator: ", ")
                + "]",
            naming: ["'trained_betas'", "expected betas in (0, 1)", "found 0"])
        try assertConfigFails(
            "\"num_train_timesteps\": 1000", "\"num_train_timesteps\": 1000000000000",
            naming: ["'num_train_timesteps'", "from 1 to 1048576", "found 1000000000000"])
        try assertConfigFails(
            "\"beta_start\": 0.00085", "\"beta_start\": \"small\"",
            naming: ["'beta_start'", "expected a number", "\"small\""])
        try assertConfigFails(
            "\"steps_offset\": 1", "\"steps_offset\": -1",
            naming: ["'steps_offset'", "found -1"])
        try assertConfigFails(
            "\"timestep_spacing\"", "\"variance_type\": \"learned\", \"x\"",
            kind: .ddpm, naming: ["'variance_type'", "fixed_small", "learned"])
    }

    func testDDIMIgnoresDDPMOnlyKeys() throws {
        let path = try editedConfig("\"timestep_spacing\"", "\"variance_type\": \"learned\", \"x\"")
        XCTAssertNoThrow(try SchedulerConfig(contentsOf: path, for: .ddim))
    }

    func testStepCountAndStrengthErrors() throws {
        var scheduler = DDIMScheduler(config: .stableDiffusion)
        for count in [0, 1001, 1000] {  // 1000 leading steps + offset 1 would reach t = 1000
            XCTAssertThrowsError(try scheduler.setTimesteps(count), "\(count) steps")
        }
        try scheduler.setTimesteps(50)
        for strength in [0, -0.5, 1.5, 0.01] {
            XCTAssertThrowsError(
                try scheduler.timesteps(strength: strength), "strength \(strength)")
        }
    }
}
