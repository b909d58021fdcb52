import Foundation
import Tensor

/// The forward process of DDPM (Ho et al. 2020): betas β_t and ᾱ_t = ∏_{s≤t} (1 − β_s) for
/// t = 0 ..< numTrainTimesteps, and what training needs from them.
///
/// Precision: diffusers holds these tables as float32 tensors, and its steps compute their
/// scalars from them in float32. We build the tables the same way (float32 betas and
/// 1 − β, the cumulative product accumulated in double and rounded per element, as
/// torch.cumprod does on the CPU), so that the steps match it bit for bit given the same
/// betas. The one difference: torch.linspace's vectorized CPU kernel rounds some betas 1 ulp
/// away from its own scalar formula, which we follow (the fixture tests show the effect).
public struct NoiseSchedule: Sendable, Equatable {
    public let betas: [Float]
    /// α_t = 1 − β_t.
    public let alphas: [Float]
    /// ᾱ_t, the signal fraction of x_t: x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε.
    public let alphasCumprod: [Float]

    public var numTrainTimesteps: Int { alphasCumprod.count }

    /// The schedule a config describes.
    public init(config: SchedulerConfig) {
        var betas = config.trainedBetas ?? Self.betas(config)
        precondition(
            betas.count == config.numTrainTimesteps,
            "\(betas.count) betas for \(config.numTrainTimesteps) training timesteps")
        if config.rescaleBetasZeroSNR { betas = Self.rescaledToZeroTerminalSNR(betas) }
        self.init(betas: betas)
    }

    /// The schedule of given betas, each in [0, 1] (1 only at the end of a zero-SNR schedule).
    public init(betas: [Float]) {
        precondition(!betas.isEmpty && betas.allSatisfy { $0 >= 0 && $0 <= 1 }, "betas in [0, 1]")
        self.betas = betas
        alphas = betas.map { 1 - $0 }
        alphasCumprod = Self.cumulativeProduct(alphas)
    }

    private static func betas(_ config: SchedulerConfig) -> [Float] {
        let n = config.numTrainTimesteps
        switch config.betaSchedule {
        case .linear:
            return linspace(Float(config.betaStart), Float(config.betaEnd), n)
        case .scaledLinear:
            // The square roots in double (Python's `beta_start**0.5`), the rest in float32.
            let start = Float(pow(config.betaStart, 0.5))
            let end = Float(pow(config.betaEnd, 0.5))
            return linspace(start, end, n).map { $0 * $0 }
        case .squaredcosCapV2:
            return cosineBetas(n)
        }
    }

    /// torch.linspace(start, end, count) in float32, by the formula of torch's scalar
    /// kernel: the first half counts up from `start`, the second down from `end`.
    static func linspace(_ start: Float, _ end: Float, _ count: Int) -> [Float] {
        guard count > 1 else { return count == 1 ? [start] : [] }
        let step = (end - start) / Float(count - 1)
        let halfway = count / 2
        return (0..<count).map { i in
            i < halfway ? start + step * Float(i) : end - step * Float(count - 1 - i)
        }
    }

    /// β_t = min(1 − ᾱ(t+1)/ᾱ(t), 0.999) for ᾱ(t) = cos²((t/T + 0.008)/1.008 · π/2)
    /// (Nichol & Dhariwal 2021, eq. 17), in double and then rounded, as diffusers does.
    static func cosineBetas(_ count: Int) -> [Float] {
        func alphaBar(_ t: Double) -> Double {
            let c = cos((t + 0.008) / 1.008 * Double.pi / 2)
            return c * c
        }
        return (0..<count).map { i in
            let t1 = Double(i) / Double(count)
            let t2 = Double(i + 1) / Double(count)
            return Float(min(1 - alphaBar(t2) / alphaBar(t1), 0.999))
        }
    }

    /// Shifts and scales √ᾱ so that its last value is 0 and its first unchanged, then
    /// turns it back into betas (Lin et al. 2024, algorithm 1), in float32 as diffusers.
    static func rescaledToZeroTerminalSNR(_ betas: [Float]) -> [Float] {
        let sqrtCumprod = cumulativeProduct(betas.map { 1 - $0 }).map { $0.squareRoot() }
        let (first, last) = (sqrtCumprod[0], sqrtCumprod[sqrtCumprod.count - 1])
        let scale = first / (first - last)
        let cumprod = sqrtCumprod.map { ($0 - last) * scale }.map { $0 * $0 }
        return cumprod.indices.map { i in 1 - (i == 0 ? cumprod[0] : cumprod[i] / cumprod[i - 1]) }
    }

    /// Running products accumulated in double, each rounded to float (torch.cumprod's CPU
    /// kernel for float32).
    static func cumulativeProduct(_ values: [Float]) -> [Float] {
        var product = 1.0
        return values.map { value in
            product *= Double(value)
            return Float(product)
        }
    }

    // MARK: what training needs

    /// x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε (Ho et al. 2020, eq. 4): `original` noised to one
    /// timestep per sample. Differentiable with respect to `original` and `noise`.
    public func addNoise(original: Tensor, noise: Tensor, timesteps: [Int]) -> Tensor {
        // original, noise: [B, ...]; timesteps: B values, or one for the whole batch
        let (signal, noiseScale) = coefficients(timesteps, like: original)
        return signal * original + noiseScale * noise
    }

    /// The v-prediction target v = √ᾱ_t ε − √(1 − ᾱ_t) x₀ (Salimans & Ho 2022, section 4),
    /// one timestep per sample (diffusers' `get_velocity`).
    public func velocity(sample: Tensor, noise: Tensor, timesteps: [Int]) -> Tensor {
        // sample, noise: [B, ...]; timesteps: B values, or one for the whole batch
        let (signal, noiseScale) = coefficients(timesteps, like: sample)
        return signal * noise - noiseScale * sample
    }

    /// √ᾱ_t and √(1 − ᾱ_t) as [B, 1, 1, ...] tensors that broadcast over x's samples.
    private func coefficients(_ timesteps: [Int], like x: Tensor) -> (Tensor, Tensor) {
        precondition(x.rank >= 1, "a batch of samples, not a scalar")
        precondition(
            timesteps.count == 1 || timesteps.count == x.shape[0],
            "\(timesteps.count) timesteps for a batch of \(x.shape[0])")
        precondition(
            timesteps.allSatisfy { (0..<numTrainTimesteps).contains($0) },
            "timesteps \(timesteps) outside 0..<\(numTrainTimesteps)")
        let shape = [timesteps.count] + Array(repeating: 1, count: x.rank - 1)
        let alphaProds = timesteps.map { alphasCumprod[$0] }
        return (
            Tensor(alphaProds.map { $0.squareRoot() }, shape: shape),
            Tensor(alphaProds.map { (1 - $0).squareRoot() }, shape: shape)
        )
    }
}

/// Tensor arithmetic the schedulers share.
enum SchedulerMath {
    /// x / s as a true division. `Tensor / Float` multiplies by 1/s, which rounds
    /// differently from diffusers' division by a 0-dim tensor.
    static func divide(_ x: Tensor, by s: Float) -> Tensor {
        x / Tensor([s], shape: [1])
    }
}
