import Diffusion

/// What an ESD run costs, said before it starts: memory beyond the loaded model, and UNet
/// image-passes for the time estimate (`RunEstimate`).
public enum ESDCost {
    /// A lower bound in bytes beyond the loaded model: at full rank the trained parameters'
    /// original values, gradients and Adam's two moments (4 float32 per trained parameter;
    /// the reference holds a whole second model instead of the first), and the activations
    /// of one trained row plus the guided sampling's two.
    public static func bytes(model: StableDiffusion, settings: ESDSettings) -> Double {
        let trained: Int
        switch settings.weights {
        case .fullRank:
            trained = model.unet.namedParameters.filter { settings.trainMethod.trains($0.0) }
                .reduce(0) { $0 + $1.1.count }
        case .lora:
            trained = 0  // adapters are small beside the activations
        }
        return Double(trained) * 4 * 4 + MemoryEstimate.training(model: model, rows: 3)
    }

    /// UNet image-passes of the run: per iteration the guided sampling's steps (two rows
    /// each; N − max(t_enc, 1) steps, (N − 1)/2 + (N − 1)/N on average over t_enc), the
    /// frozen model's two rows and the trained row forward and backward.
    public static func passes(_ settings: ESDSettings) -> Int {
        let n = Double(settings.ddimSteps)
        let sampling = 2 * ((n - 1) / 2 + (n - 1) / n)
        let perIteration =
            sampling + 2
            + Double(
                RunEstimate.trainingPasses(
                    steps: 1, rows: 1, withReference: false))
        return Int((perIteration * Double(settings.iterations)).rounded())
    }
}
