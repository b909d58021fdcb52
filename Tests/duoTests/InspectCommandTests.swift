import Foundation
import XCTest

/// `duo inspect`, run as the built executable: exit codes, stdout, and one-line errors.
final class InspectCommandTests: XCTestCase {
    /// FormatsTests' fixtures, shared rather than copied (tools/make_safetensors_fixtures.py).
    private static let fixtures = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("FormatsTests/Fixtures")

    private struct Expected: Decodable {
        struct Malformed: Decodable {
            let file: String
            let tensor: String?
        }
        let malformed: [Malformed]
        let corruptPng: [String]
    }

    private func expected() throws -> Expected {
        let data = try Data(contentsOf: Self.fixtures.appendingPathComponent("expected.json"))
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(Expected.self, from: data)
    }

    private func fixture(_ relative: String) -> String {
        Self.fixtures.appendingPathComponent(relative).path
    }

    func testSafeTensorsListsNamesDTypesShapesAndMetadata() throws {
        let result = try runDuo(["inspect", fixture("tensors.safetensors")])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stderr, "")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        // Values from the fixture script's tensor_specs() and TENSOR_METADATA.
        for row in [
            ["text_encoder.f32_matrix", "F32", "[2, 3]"],
            ["text_encoder.f32_scalar", "F32", "[]"],
            ["text_encoder.f32_empty", "F32", "[0, 4]"],
            ["unet.f16_cube", "F16", "[2, 2, 2]"],
            ["vae.bf16_values", "BF16", "[2, 3]"],
        ] {
            let match = lines.first { line in
                let words = line.split(separator: " ").map(String.init)
                return words.first == row[0] && words.count >= 3 && words[1] == row[1]
                    && line.hasSuffix("  " + row[2])
            }
            XCTAssertNotNil(match, "no line for \(row) in:\n\(result.stdout)")
        }
        XCTAssertTrue(lines.contains("  format = pt"), result.stdout)
        XCTAssertTrue(lines.contains("  duo.fixture = tensors v1"), result.stdout)
        // 6 + 1 + 0 + 12 + 8 + 1 + 6 + 0 elements.
        XCTAssertTrue(lines.contains("total parameters: 34"), result.stdout)
    }

    func testOtherDTypesAreListed() throws {
        let result = try runDuo(["inspect", fixture("other_dtypes.safetensors")])
        XCTAssertEqual(result.status, 0, result.stderr)
        for dtype in ["F64", "I64", "I32", "I16", "I8", "U8", "BOOL"] {
            XCTAssertTrue(result.stdout.contains(" \(dtype) "), "\(dtype) in:\n\(result.stdout)")
        }
    }

    func testPNGShowsSizeChannelsBitDepthAndColorType() throws {
        let result = try runDuo(["inspect", fixture("png/rgb16.png")])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stderr, "")
        for line in ["size: 3 x 2", "bit depth: 16", "color type: RGB"] {
            XCTAssertTrue(result.stdout.contains(line + "\n"), "\(line) in:\n\(result.stdout)")
        }
        XCTAssertTrue(result.stdout.contains("channels: 3"), result.stdout)
    }

    func testEveryMalformedSafeTensorsFailsWithOneLine() throws {
        let cases = try expected().malformed
        XCTAssertGreaterThanOrEqual(cases.count, 15)
        for malformed in cases {
            let path = fixture(malformed.file)
            let result = try runDuo(["inspect", path])
            assertOneLineFailure(result, naming: path, malformed.file)
            if let tensor = malformed.tensor {
                XCTAssertTrue(
                    result.stderr.contains("'\(tensor)'"), "\(malformed.file): \(result.stderr)")
            }
        }
    }

    func testEveryCorruptPNGFailsWithOneLine() throws {
        let files = try expected().corruptPng
        XCTAssertGreaterThanOrEqual(files.count, 5)
        for file in files {
            let path = fixture(file)
            assertOneLineFailure(try runDuo(["inspect", path]), naming: path, file)
        }
    }

    func testMissingUnknownAndDirectoryPathsFailWithOneLine() throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("duo-inspect-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let missing = directory.appendingPathComponent("nothing here.safetensors").path
        let missingResult = try runDuo(["inspect", missing])
        assertOneLineFailure(missingResult, naming: missing, "missing file")
        XCTAssertTrue(missingResult.stderr.contains("no such file"), missingResult.stderr)

        let text = directory.appendingPathComponent("notes.txt")
        try Data("just text\n".utf8).write(to: text)
        assertOneLineFailure(try runDuo(["inspect", text.path]), naming: text.path, "unknown type")
        assertOneLineFailure(
            try runDuo(["inspect", directory.path]), naming: directory.path, "directory")
    }

    func testRootHelpListsInspect() throws {
        let result = try runDuo(["--help"])
        XCTAssertEqual(result.status, 0)
        XCTAssertTrue(result.stdout.contains("inspect"), result.stdout)
        XCTAssertTrue(result.stdout.contains("DUO"), result.stdout)
    }

    private func assertOneLineFailure(
        _ result: DuoResult, naming path: String, _ label: String,
        file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertNotEqual(result.status, 0, "\(label) exited 0", file: file, line: line)
        XCTAssertEqual(result.stdout, "", "\(label) wrote to stdout", file: file, line: line)
        let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: false)
        // Exactly one line: the text, then the final newline (an empty last element).
        XCTAssertEqual(
            lines.count, 2, "\(label): \(result.stderr.debugDescription)", file: file, line: line)
        XCTAssertEqual(lines.last, "", "\(label): no final newline", file: file, line: line)
        XCTAssertTrue(
            result.stderr.hasPrefix("Error: \(path): "), "\(label): \(result.stderr)",
            file: file, line: line)
    }
}
