import Tensor

/// The pair term of a preference objective: which loss the safe (preferred) and unsafe
/// images of a pair feed.
public enum PreferenceObjective: String, CaseIterable, Sendable {
    /// Diffusion-DPO's −log σ(inside) (Wallace et al. 2024, eq. 14), DUO's objective.
    case dpo
    /// DSPO's score-matching objective (Zhu, Xiao, Honavar: Direct Score Preference
    /// Optimization, the final objective L_DSPO).
    case dspo
}

/// DSPO's pair term as its authors' code computes it for SD 1.5 (huaishengzhu/DSPO 8b4e09b,
/// train.py l.1137-1169):
///
///   mean_i mean_chw ( εθ(xʷ_t) − ε − β (1 − σ(inside_i)) (εθ(xʷ_t) − εref(xʷ_t)) )²
///
/// with inside_i = −β/2 [(‖εθ(xʷ_t) − ε‖² − ‖εθ(xˡ_t) − ε‖²) − (‖εref(xʷ_t) − ε‖² − ‖εref(xˡ_t) − ε‖²)]
/// (per-image mean squares, the same timestep and noise for both images of a pair). In the
/// paper's notation β is λγ and inside is the reward difference r(c, xʷ) − r(c, xˡ), with
/// r = −(‖εθ − ε‖² − ‖εref − ε‖²), scaled by β/2 as the code scales it. The gradient flows
/// through σ as well, into both images' predictions: the code detaches nothing but εref.
public enum DSPOTerm {
    /// The term from the trained and reference predictions on the safe image ([B, C, h, w]),
    /// its target, and `inside` ([B], −β/2 times the difference of the four MSE terms).
    public static func loss(
        trainedSafe: Tensor, referenceSafe: Tensor, targetSafe: Tensor, inside: Tensor,
        beta: Float
    ) -> Tensor {
        let b = trainedSafe.shape[0]
        // β (1 − σ(inside)) = β σ(−inside), stable for large |inside|.
        let weight = exp(logSigmoid(inside * -1)) * beta  // [B]
        let broadcastShape = [b] + Array(repeating: 1, count: trainedSafe.rank - 1)
        let residual =
            (trainedSafe - targetSafe) - weight.reshaped(broadcastShape)
            * (trainedSafe - referenceSafe)
        // Every image has the same size, so the mean over all values is the mean over
        // images of each image's mean, as the code's .mean(dim=[1,2,3]).mean().
        return mean(residual * residual)
    }
}
