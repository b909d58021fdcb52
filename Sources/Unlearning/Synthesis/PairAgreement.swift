import Formats

/// How much of a pair an edit kept besides the concept, as a model's world can tell: the
/// embedded world reads each image's shape and colour with its detector. Reported in
/// `duo synthesize`'s summary; a real model has none (pixel distances are always reported).
public protocol PairAgreement {
    /// What is compared, for the summary ("shape and colour").
    var measure: String { get }

    /// The share of pairs (`unsafe[i]`, `safe[i]`) that agree, nil when the images are not
    /// ones this world can read.
    func agreement(unsafe: [PNGImage], safe: [PNGImage]) -> Double?
}
