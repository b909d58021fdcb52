import Diffusion
import Evaluation
import Formats
import Foundation
import Tensor
import TestSupport
import XCTest

/// LPIPS on a narrow stand-in for VGG16 (lpips' structure, widths 4 to 8) against the lpips
/// package's own forward on the same weights and images (tools/make_lpips_fixture.py).
final class LPIPSTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/lpips")
    static let weights = fixtures.appendingPathComponent("weights.safetensors").path
    static let reference = try! SafeTensorsReader(
        path: fixtures.appendingPathComponent("reference.safetensors").path)

    /// The fixture's RGB images `name`, [N, H, W, 3] bytes.
    static func images(_ name: String) throws -> [PNGImage] {
        let shape = try reference.info(name).shape
        let bytes = try reference.withUnsafeRawBytes(name) { Array($0) }
        let (h, w, c) = (shape[1], shape[2], shape[3])
        return stride(from: 0, to: bytes.count, by: h * w * c).map {
            PNGImage(width: w, height: h, channels: c, pixels: Array(bytes[$0..<$0 + h * w * c]))
        }
    }

    /// How far our per-layer terms may be from lpips', given the terms d_l.
    ///
    /// The features carry float32 rounding of r relative on each side (TestSupport's network
    /// estimate over the trunk, and the inputs' 2x − 1 computed another way), 2r between the
    /// two. A term is the pixel mean of Σ_c w_c Δ_c², Δ = u − v of unit vectors; moving each
    /// feature by 2r of itself moves Δ_c by at most 2r (|u_c| + |v_c|) after the
    /// normalization, so the sum by at most 4r Σ_c w_c |Δ_c| (|u_c| + |v_c|)
    /// ≤ 4r sqrt(Σ w Δ²) sqrt(4 max w) by Cauchy–Schwarz, and the mean over pixels by at
    /// most 8r sqrt(max w · d_l). An upper estimate that is 0 for identical images.
    static func tolerances(_ model: LPIPS, terms: [Float]) -> [Float] {
        let r = 2 * Float32Rounding.network(weights: model.features.parameters)
        return zip(model.heads, terms).map { head, term in
            let largest = head.weight.scalars.map { abs($0) }.max() ?? 0
            return 8 * r * (largest * max(term, 0)).squareRoot()
        }
    }

    func testDistancesMatchTheLPIPSPackage() throws {
        let model = try LPIPS(path: Self.weights)
        XCTAssertEqual(model.features.outputChannels, [5, 6, 8, 8, 5], "widths from the file")
        for set in ["square", "odd"] {
            let (a, b) = (try Self.images("images.\(set).a"), try Self.images("images.\(set).b"))
            let expected = try Self.reference.floats("distance.\(set)")
            let expectedLayers = try Self.reference.floats("layers.\(set)")
            for i in a.indices {
                let (x, y) = (ImageConversion.modelInput(a[i]), ImageConversion.modelInput(b[i]))
                let layers = model.layerDistances(x, y).map { $0[0] }
                let wanted = Array(expectedLayers[i * 5..<(i + 1) * 5])
                let tolerance = Self.tolerances(model, terms: wanted)
                for l in 0..<5 {
                    XCTAssertEqual(
                        layers[l], wanted[l], accuracy: tolerance[l],
                        "\(set) pair \(i), layer \(l) (lpips' retPerLayer term)")
                }
                XCTAssertEqual(
                    model.distance(x, y)[0], expected[i], accuracy: tolerance.reduce(0, +),
                    "\(set) pair \(i): lpips' distance, the sum of the five terms")
            }
        }
    }

    func testMetricAveragesOverKeepImagesAndIsZeroForTheSameImages() throws {
        let metric = try LPIPSPreservation(weights: Self.weights)
        XCTAssertEqual(metric.columns.map(\.key), ["lpips"])
        let (a, b) = (try Self.images("images.square.a"), try Self.images("images.square.b"))
        let same = try metric.measure(a, original: a, isOriginal: false)
        XCTAssertEqual(same, [0], "identical images run the same ops: exactly 0")
        XCTAssertEqual(try metric.measure(a, original: a, isOriginal: true), [0])

        let expected = try Self.reference.floats("distance.square")
        let mean = Double(expected.reduce(0, +)) / Double(expected.count)
        let model = try LPIPS(path: Self.weights)
        let expectedLayers = try Self.reference.floats("layers.square")
        var tolerance: Float = 0
        for i in expected.indices {
            let terms = Array(expectedLayers[i * 5..<(i + 1) * 5])
            tolerance += Self.tolerances(model, terms: terms).reduce(0, +) / Float(expected.count)
        }
        let measured = try metric.measure(b, original: a, isOriginal: false)
        XCTAssertEqual(
            measured[0]!, mean, accuracy: Double(tolerance), "the mean of lpips' distances")

        let odd = try Self.images("images.odd.a")
        XCTAssertEqual(
            try metric.measure([odd[0]], original: [a[0]], isOriginal: false), [nil],
            "images of other sizes have no LPIPS")
    }

    /// The fixture's weights with `key` left out, or given `replacement` (shape, values).
    func weights(without key: String, replacement: ([Int], [Float])? = nil) throws -> String {
        let file = try SafeTensorsReader(path: Self.weights)
        var writer = SafeTensorsWriter()
        for name in file.names where name != key {
            try writer.add(name, shape: try file.info(name).shape, values: try file.floats(name))
        }
        if let replacement {
            try writer.add(key, shape: replacement.0, values: replacement.1)
        }
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("duo-lpips-\(UUID()).safetensors").path
        try writer.write(to: path)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    func testMissingOrMisshapenTensorsNameFileAndKey() throws {
        let missing = try weights(without: "net.slice3.12.bias")
        XCTAssertThrowsError(try LPIPSPreservation(weights: missing)) {
            XCTAssertEqual(
                String(describing: $0),
                "\(missing): key 'net.slice3.12.bias': missing (expected a tensor of shape [7])")
        }
        let noConvolution = try weights(without: "net.slice2.5.weight")
        XCTAssertThrowsError(try LPIPS(path: noConvolution)) {
            XCTAssertEqual(
                String(describing: $0),
                "\(noConvolution): key 'net.slice2.5.weight': missing (expected a VGG16 "
                    + "convolution of [out, 5, 3, 3])")
        }
        let wideHead = try weights(
            without: "lin2.model.1.weight",
            replacement: ([1, 64, 1, 1], Array(repeating: 1, count: 64)))
        XCTAssertThrowsError(try LPIPS(path: wideHead)) {
            XCTAssertEqual(
                String(describing: $0),
                "\(wideHead): key 'lin2.model.1.weight': expected shape [1, 8, 1, 1], found "
                    + "[1, 64, 1, 1]")
        }
    }
}
