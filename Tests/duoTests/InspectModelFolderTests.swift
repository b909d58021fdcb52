import Foundation
import XCTest

/// `duo inspect DIR` on the diffusers folders of DiffusionTests' fixtures
/// (tools/make_model_fixtures.py, saved by diffusers' save_pretrained).
final class InspectModelFolderTests: XCTestCase {
    private static let models = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("DiffusionTests/Fixtures/models").path

    func testPipelineFolderListsComponentsWithParameterCounts() throws {
        let result = try runDuo(["inspect", Self.models + "/pipeline"])
        XCTAssertEqual(result.status, 0, result.stderr)
        // Counts printed by the fixture script (sum of numel over each model's parameters).
        for line in [
            "unet: UNet2DConditionModel", "text_encoder: CLIPTextModel", "vae: AutoencoderKL",
            "scheduler: DDIMScheduler", "(203204) parameters, F32", "(48106) parameters, F32",
            "(43711) parameters, F32",
        ] {
            XCTAssertTrue(result.stdout.contains(line), "\(line) in:\n\(result.stdout)")
        }
    }

    func testSingleComponentFolderShowsItsDType() throws {
        let result = try runDuo(["inspect", Self.models + "/unet-b"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("(143659) parameters, F16"), result.stdout)
    }

    func testFolderThatIsNoModelIsAOneLineError() throws {
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent(
            "duo-empty-\(UUID())"
        ).path
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: empty) }
        let result = try runDuo(["inspect", empty])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertEqual(result.stderr.split(separator: "\n").count, 1, result.stderr)
        XCTAssertTrue(
            result.stderr.contains(empty) && result.stderr.contains("model_index.json"),
            result.stderr)
    }
}
