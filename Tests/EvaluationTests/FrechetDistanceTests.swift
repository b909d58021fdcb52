@testable import Evaluation
import Formats
import Foundation
import Tensor
import XCTest

/// The Fréchet distance between Gaussians (FID's formula): closed forms, and scipy on
/// feature sets (tools/make_clip_fixture.py).
final class FrechetDistanceTests: XCTestCase {
    /// The CLIP fixture beside the Diffusion tests' models: its reference file holds two
    /// feature sets and their distance by scipy.
    static let reference = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(
            "DiffusionTests/Fixtures/models/clip-reference.safetensors"
        ).path

    func testFrechetDistanceMatchesScipyOnFeatureSets() throws {
        // pytorch-fid's formula with scipy.linalg.sqrtm on np.cov of the same float32
        // features: both sides work in float64 and differ by its round-off, far below the
        // half ulp to which the reference is stored (float32); hold one ulp.
        let file = try SafeTensorsReader(path: Self.reference)
        let (a, b) = (try tensor(file, "fid.features_a"), try tensor(file, "fid.features_b"))
        let scipy = Double(try file.floats("fid.scipy")[0])
        XCTAssertEqual(
            FrechetDistance.distance(features: a, b), scipy,
            accuracy: abs(scipy) * Double(Float.ulpOfOne),
            "Fréchet distance of fid.features_a to fid.features_b (scipy.linalg.sqrtm)")
        XCTAssertEqual(
            FrechetDistance.sampleDistance(a, b), scipy,
            accuracy: abs(scipy) * Double(Float.ulpOfOne),
            "the same from the samples' Gram matrix (scipy.linalg.sqrtm)")
    }

    func testFewerSamplesThanDimensionsGiveTheCovarianceFormula() {
        // 5 and 7 samples in 12 dimensions: rank-deficient covariances, where the sample
        // form is used. Both forms take square roots of eigenvalues that are 0 exactly but
        // come out of float64 as round-off of up to about n·ε of the largest, so each such
        // root is off by up to √(n·ε) of the largest singular value; at most n of them, on
        // a scale bounded by tr Σ1 + tr Σ2.
        let x = Tensor.randn([5, 12], key: RandomKey(seed: 3))
        let y = Tensor.randn([7, 12], key: RandomKey(seed: 4)) * 2 + 0.5
        let (sx, sy) = (FeatureStatistics(features: x), FeatureStatistics(features: y))
        let viaCovariance = FrechetDistance.distance(sx, sy)
        let scale = (0..<12).reduce(0.0) { $0 + sx.covariance[$1 * 13] + sy.covariance[$1 * 13] }
        let tolerance = 7 * (7 * Double.ulpOfOne).squareRoot() * scale
        XCTAssertEqual(
            FrechetDistance.distance(features: x, y), viaCovariance, accuracy: tolerance)
        XCTAssertEqual(
            FrechetDistance.distance(features: y, x), viaCovariance, accuracy: tolerance,
            "symmetric")
        XCTAssertEqual(FrechetDistance.distance(features: x, x), 0, accuracy: tolerance)
    }

    func testFrechetDistanceOfDiagonalGaussians() {
        // Commuting covariances: d² = |Δμ|² + Σ (σ1_i − σ2_i)².
        let a = FeatureStatistics(mean: [0, 1, 2], covariance: diagonal([1, 4, 9]))
        let b = FeatureStatistics(mean: [1, 1, 0], covariance: diagonal([4, 4, 1]))
        let expected = (1.0 + 0 + 4) + (1.0 + 0 + 4)
        XCTAssertEqual(FrechetDistance.distance(a, b), expected, accuracy: 1e-10)
        XCTAssertEqual(FrechetDistance.distance(a, a), 0, accuracy: 1e-10)
    }

    func testFrechetDistanceOfNonCommutingGaussians() {
        // For 2x2 PSD M, tr √M = √(tr M + 2 √det M); with M = Σ1^{1/2} Σ2 Σ1^{1/2},
        // tr M = tr(Σ1 Σ2) and det M = det Σ1 det Σ2.
        let s1: [Double] = [2, 1, 1, 2]
        let s2: [Double] = [1, -0.5, -0.5, 3]
        let trProduct = s1[0] * s2[0] + s1[1] * s2[2] + s1[2] * s2[1] + s1[3] * s2[3]
        let det1 = s1[0] * s1[3] - s1[1] * s1[2]
        let det2 = s2[0] * s2[3] - s2[1] * s2[2]
        let crossTrace = (trProduct + 2 * (det1 * det2).squareRoot()).squareRoot()
        let expected = (0.25 + 4) + (4 + 4) - 2 * crossTrace
        let a = FeatureStatistics(mean: [0.5, 0], covariance: s1)
        let b = FeatureStatistics(mean: [0, 2], covariance: s2)
        XCTAssertEqual(FrechetDistance.distance(a, b), expected, accuracy: 1e-10)
        XCTAssertEqual(FrechetDistance.distance(b, a), expected, accuracy: 1e-10, "symmetric")
    }

    func testFrechetDistanceOfRotatedGaussians() {
        // Σ = R diag(λ) Rᵀ and Σ' = R diag(λ') Rᵀ share eigenvectors:
        // d² = Σ (√λ_i − √λ'_i)² whatever the rotation R.
        let (c, s) = (cos(0.7), sin(0.7))
        let r: [Double] = [c, -s, 0, s, c, 0, 0, 0, 1]
        func rotated(_ values: [Double]) -> [Double] {
            var out = [Double](repeating: 0, count: 9)
            for i in 0..<3 {
                for j in 0..<3 {
                    for k in 0..<3 { out[i * 3 + j] += r[i * 3 + k] * values[k] * r[j * 3 + k] }
                }
            }
            return out
        }
        let a = FeatureStatistics(mean: [0, 0, 0], covariance: rotated([1, 9, 0.25]))
        let b = FeatureStatistics(mean: [0, 0, 0], covariance: rotated([4, 1, 0.25]))
        XCTAssertEqual(FrechetDistance.distance(a, b), 1 + 4 + 0, accuracy: 1e-9)
    }

    func testFeatureStatisticsAreTheSampleMeanAndUnbiasedCovariance() {
        // Rows (0, 0), (2, 0), (1, 3): mean (1, 1); np.cov(rowvar=False) = [[1, 0], [0, 3]].
        let stats = FeatureStatistics(features: Tensor([0, 0, 2, 0, 1, 3], shape: [3, 2]))
        XCTAssertEqual(stats.mean, [1, 1])
        for (found, expected) in zip(stats.covariance, [1.0, 0, 0, 3]) {
            XCTAssertEqual(found, expected, accuracy: 1e-12)
        }
    }
}

private func diagonal(_ values: [Double]) -> [Double] {
    var out = [Double](repeating: 0, count: values.count * values.count)
    for (i, value) in values.enumerated() { out[i * values.count + i] = value }
    return out
}

/// A tensor of a safetensors file.
func tensor(_ file: SafeTensorsReader, _ name: String) throws -> Tensor {
    Tensor(try file.floats(name), shape: try file.info(name).shape)
}
