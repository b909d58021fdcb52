import Foundation
import XCTest

@testable import Formats

final class FileInspectionTests: XCTestCase {
    private let expected = Expected.shared

    func testSafeTensorsReportListsEveryTensorMetadataAndTotal() throws {
        let path = fixturePath(expected.tensors.file)
        let lines = try FileInspection.report(path: path).split(separator: "\n").map(String.init)
        for (name, tensor) in expected.tensors.tensors {
            let shape = "[" + tensor.shape.map(String.init).joined(separator: ", ") + "]"
            let row = lines.first { $0.split(separator: " ").first.map(String.init) == name }
            let columns = row?.split(separator: " ", omittingEmptySubsequences: true)
            XCTAssertEqual(columns?.first.map(String.init), name)
            XCTAssertEqual(columns?.dropFirst().first.map(String.init), tensor.dtype, name)
            XCTAssertTrue(row?.hasSuffix("  " + shape) ?? false, "\(name): \(row ?? "no row")")
        }
        for (key, value) in expected.tensors.metadata {
            XCTAssertTrue(lines.contains("  \(key) = \(value)"), "metadata \(key)")
        }
        let total = expected.tensors.tensors.values.reduce(0) { $0 + $1.float32Bits.count }
        XCTAssertTrue(lines.contains("total parameters: \(total)"), "\(lines)")
    }

    func testPNGReport() throws {
        let report = try FileInspection.report(path: fixturePath("png/rgb16.png"))
        XCTAssertTrue(report.contains("size: 3 x 2\n"), report)
        XCTAssertTrue(report.contains("bit depth: 16\n"), report)
        XCTAssertTrue(report.contains("color type: RGB\n"), report)
        XCTAssertTrue(report.contains("channels: 3"), report)
        let palette = try FileInspection.report(path: fixturePath("png/palette4_trns.png"))
        XCTAssertTrue(palette.contains("color type: palette\n"), palette)
        XCTAssertTrue(palette.contains("bit depth: 4\n"), palette)
        XCTAssertTrue(palette.contains("channels: 4"), palette)
    }

    func testRecognizesBySignatureThenExtension() throws {
        let directory = try makeTemporaryDirectory(self)
        // A safetensors file under another name is still recognized by its header.
        let renamed = directory + "/weights.bin"
        try FileManager.default.copyItem(
            atPath: fixturePath(expected.tensors.file), toPath: renamed)
        XCTAssertEqual(try FileInspection.kind(ofFileAt: renamed), .safetensors)
        XCTAssertEqual(try FileInspection.kind(ofFileAt: fixturePath("png/rgb8.png")), .png)
        // A damaged file keeps its format's error thanks to the extension.
        let damaged = fixturePath("png/not_a_png.png")
        assertFormatError(.invalidPNG, path: damaged) { try FileInspection.report(path: damaged) }

        let text = directory + "/notes.txt"
        try Data("hello\n".utf8).write(to: URL(fileURLWithPath: text))
        assertFormatError(.unknownFormat, path: text) { try FileInspection.report(path: text) }
        assertFormatError(.io, path: directory) { try FileInspection.report(path: directory) }
    }

    func testLineBreaksInNamesStayEscaped() throws {
        let directory = try makeTemporaryDirectory(self)
        let path = directory + "/odd.safetensors"
        var writer = SafeTensorsWriter(metadata: ["note": "two\nlines"])
        try writer.add("a\nb", shape: [1], values: [1])
        try writer.write(to: path)
        let report = try FileInspection.report(path: path)
        XCTAssertTrue(report.contains("  note = two\\nlines\n"), report)
        XCTAssertTrue(report.contains("  a\\nb  F32  [1]\n"), report)
    }
}
