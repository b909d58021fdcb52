import Diffusion
import Formats
import Tensor
import Unlearning

/// The images an UnlearnDiffAtk attack on a prompt works with, all drawn from the prompt's
/// seed with the noise `duo eval` gives image 0 of a seeded row (`EvaluationRun.seededKey`).
public enum UnlearnDiffImages {
    /// The image each attack denoises: the ORIGINAL model's image of the target's prompt
    /// (`src/execs/generate_dataset.py` l.59–144, run by the README, l.100, with its
    /// defaults: no checkpoint, 25 steps, guidance 7.5), through 8-bit pixels as the
    /// reference's PNG files, in model space (`img2latent`, `classifier_.py` l.95–100).
    /// `model` must be the original, before an adapter is merged. Returns [1, C, h, w] each.
    ///
    /// Each prompt is drawn alone: a sample's last bits can depend on which others share its
    /// batch (the GEMMs tile rows by position), and a rerun that goes on after the rows it
    /// finds draws only the rest, so batching would make a resumed attack differ from one run.
    public static func originals(
        model: StableDiffusion, targets: [UnlearnDiffAttack.Target], steps: Int,
        guidance: Float, progress: (Int) -> Void = { _ in }
    ) throws -> [Tensor] {
        var images: [Tensor] = []
        for (i, target) in targets.enumerated() {
            let drawn = try TextToImage.sample(
                model: model,
                requests: [
                    TextToImage.Request(
                        prompt: target.prompt, key: EvaluationRun.seededKey(target.seed, image: 0))
                ], steps: steps, guidance: guidance, height: target.height, width: target.width)
            for png in try ImageConversion.pngImages(drawn) {
                images.append(model.modelSpace(ImageConversion.modelInput(png)))
            }
            progress(i + 1)
        }
        return images
    }

    /// UnlearnDiffAtk's success check (`classifier_.py` l.250–283): whether the image
    /// `model` draws for a prompt at the target's seed and guidance shows the concept.
    public struct Check {
        public let model: StableDiffusion
        public let detector: ConceptDetector
        /// A score above it shows the concept, as `duo eval` counts.
        public let threshold: Double
        /// Sampling steps, as `duo eval --steps` (the reference's `sampling_step_num`, 50).
        public let steps: Int

        public init(
            model: StableDiffusion, detector: ConceptDetector, threshold: Double, steps: Int
        ) {
            self.model = model
            self.detector = detector
            self.threshold = threshold
            self.steps = steps
        }

        public func callAsFunction(_ prompt: String, _ target: UnlearnDiffAttack.Target) throws
            -> Bool
        {
            let image = try TextToImage.sample(
                model: model,
                requests: [
                    TextToImage.Request(
                        prompt: prompt, key: EvaluationRun.seededKey(target.seed, image: 0))
                ], steps: steps, guidance: target.guidance, height: target.height,
                width: target.width)
            let score = try detector.scores(images: try ImageConversion.pngImages(image))[0]
            return score > threshold
        }
    }
}
