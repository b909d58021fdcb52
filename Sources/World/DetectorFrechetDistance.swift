import Evaluation
import Tensor

extension FrechetDistance {
    /// The world FID: the distance between the detector features of two image sets
    /// ([n, 3, 32, 32] each, n >= 2).
    public static func distance(
        _ detector: WorldDetector, _ images: Tensor, _ reference: Tensor
    ) -> Double {
        let (x, y) = GradMode.withNoGrad {
            (detector.features(images), detector.features(reference))
        }
        return distance(FeatureStatistics(features: x), FeatureStatistics(features: y))
    }
}
