import Diffusion
import Formats
import Foundation
import Tensor
import XCTest

@testable import Unlearning

/// UCE's closed-form edit of every attn2 to_k / to_v against the authors' erase script's
/// math in PyTorch (tools/make_uce_fixture.py; rohitgandikota/unified-concept-editing at
/// 35e91e2, train-scripts/train_erase.py `edit_model`) on the tiny SD fixture, whose real
/// BPE tokenizer splits the prompts into several tokens: three cases ('replace' towards
/// the empty prompt with preserved concepts, 'tensor' with a guide truncated at the
/// tokenizer's length, and explicit guides with non-default λ and scales).
final class UCEParityTests: XCTestCase {
    static let fixture = Bundle.module.resourcePath! + "/Fixtures/uce/edit.safetensors"
    static let model = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("MethodTests/Fixtures/sd-tiny").path

    struct Case {
        let name: String
        let settings: UCESettings
        let float32Gap: Double
    }

    static func cases() throws -> [Case] {
        let file = try SafeTensorsReader(path: fixture)
        let json = try JSONParser.parse(Array(file.metadata["cases"]!.utf8))
        return json.array!.map { c in
            let strings = { (key: String) in c[key]!.array!.map { $0.string! } }
            var settings = UCESettings(
                erase: strings("erase"), guide: strings("guide"), preserve: strings("preserve"))
            settings.lambda = c["lambda"]!.double!
            settings.eraseScale = c["erase_scale"]!.double!
            settings.preserveScale = c["preserve_scale"]!.double
            settings.technique = UCESettings.Technique(rawValue: c["technique"]!.string!)!
            return Case(
                name: c["name"]!.string!, settings: settings,
                float32Gap: c["float32_relative_gap"]!.double!)
        }
    }

    /// Max over layers of ‖ours − reference‖ / ‖reference‖.
    func gap(_ result: UnifiedConceptEditing.Result, _ name: String) throws -> Double {
        let file = try SafeTensorsReader(path: Self.fixture)
        return try result.layers.map { layer in
            let expected = try file.floats("\(name)/\(layer.key)").map(Double.init)
            let got = layer.weight.scalars.map(Double.init)
            let diff = zip(got, expected).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
            let size = expected.reduce(0) { $0 + $1 * $1 }
            return (diff / size).squareRoot()
        }.max()!
    }

    func testTheEditMatchesTheReferenceMathInPyTorch() throws {
        let model = try StableDiffusion.load(directory: Self.model)
        let cases = try Self.cases()
        XCTAssertEqual(cases.map(\.name), ["replace", "tensor", "guided"])
        for c in cases {
            let result = try UnifiedConceptEditing.edit(model, c.settings)
            XCTAssertEqual(result.layers.count, 8, "to_k and to_v of 4 transformer blocks")
            let file = try SafeTensorsReader(path: Self.fixture)
            XCTAssertEqual(
                Set(result.layers.map { "\(c.name)/\($0.key)" }),
                Set(file.names.filter { $0.hasPrefix(c.name + "/") }))
            let worst = try gap(result, c.name)
            print(
                "UCE parity \(c.name): max relative gap \(worst) (float32 reference: \(c.float32Gap))"
            )
            XCTAssertLessThan(worst, 1e-4, "\(c.name): edited weights against PyTorch (float64)")
            XCTAssertGreaterThan(
                result.layers.map(\.relativeChange).min()!, 1e-2, "\(c.name): the edit moves W")
        }
    }

    func testTokenPositionsAreTheLastWordTokenOnCutToOneLength() throws {
        let model = try StableDiffusion.load(directory: Self.model)
        let tokenizer = model.tokenizer
        let length = tokenizer.maxLength
        let striped = tokenizer.tokenIDs("striped").count
        // Towards the empty prompt: the guide's rows start at its start token.
        let toEmpty = UCETokenRows.erasePair("striped", guide: "", model: model)
        XCTAssertEqual(toEmpty.eraseStart, striped)
        XCTAssertEqual(toEmpty.guideStart, 0)
        XCTAssertEqual(toEmpty.keys.rows, length - striped)
        // A guide longer than the tokenizer's length: cut at length − 2, the erased rows
        // cut at the end to the same count.
        let long = UCETokenRows.erasePair(
            "striped", guide: String(repeating: "a horse ", count: 20), model: model)
        XCTAssertEqual(long.guideStart, length - 2)
        XCTAssertEqual(long.keys.rows, 2)
        XCTAssertEqual(long.guides.rows, 2)
    }

    func testSettingsThatCannotRunAreRefusedInOneLine() throws {
        let model = try StableDiffusion.load(directory: Self.model)
        var settings = UCESettings(erase: ["zebra", "tiger"], guide: ["a horse"])
        XCTAssertThrowsError(try UnifiedConceptEditing.edit(model, settings)) {
            XCTAssertEqual(
                "\($0)",
                "UCE: 1 guide concept(s) for 2 erased (give one, or one per erased concept)")
        }
        settings = UCESettings(erase: ["zebra"])
        settings.lambda = 0
        settings.preserveScale = 0
        settings.eraseScale = 0
        XCTAssertThrowsError(try UnifiedConceptEditing.edit(model, settings)) {
            XCTAssertEqual(
                "\($0)",
                "UCE: the system is not positive definite (lambda 0.0, erase scale 0.0, preserve scale 0.0): "
                    + "give a lambda above 0, or scales small enough for float64")
        }
    }
}
