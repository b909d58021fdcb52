import Foundation

/// Linear warm-up from 0 to the base rate, then constant or cosine decay to 0
/// (the schedules of diffusers' `get_scheduler`: "constant_with_warmup", "cosine").
public struct LearningRateSchedule: Sendable, Equatable {
    public enum Decay: String, Sendable, CaseIterable {
        case constant, cosine
    }

    public var baseRate: Float
    public var warmupSteps: Int
    public var totalSteps: Int
    public var decay: Decay

    public init(baseRate: Float, warmupSteps: Int = 0, totalSteps: Int, decay: Decay = .constant) {
        self.baseRate = baseRate
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
        self.decay = decay
    }

    /// The rate for optimizer step `step` (0-based), as diffusers computes it: warm-up
    /// starts at 0 on step 0 and reaches the base rate at step `warmupSteps`.
    public func rate(at step: Int) -> Float {
        if step < warmupSteps { return baseRate * Float(step) / Float(warmupSteps) }
        switch decay {
        case .constant:
            return baseRate
        case .cosine:
            let span = max(1, totalSteps - warmupSteps)
            let progress = min(1, Double(step - warmupSteps) / Double(span))
            return baseRate * Float(0.5 * (1 + cos(Double.pi * progress)))
        }
    }
}
