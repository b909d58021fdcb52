import Foundation
import XCTest

@testable import Formats

/// Writing safetensors: values against independent expectations (numpy's float16 rounding,
/// exact float32 bits), the header layout the reference writer produces, atomicity.
final class SafeTensorsWriterTests: XCTestCase {
    private let expected = Expected.shared

    func testF32RoundTripIsBitExact() throws {
        let directory = try makeTemporaryDirectory(self)
        let path = directory + "/f32.safetensors"
        let specials: [Float] = [
            0, -0.0, 1, -2.5, .infinity, -.infinity, .nan, .leastNonzeroMagnitude,
            .greatestFiniteMagnitude, 0.1,
        ]
        var writer = SafeTensorsWriter()
        try writer.add("specials", shape: [2, 5], values: specials)
        try writer.add("scalar", shape: [], values: [42])
        try writer.add("empty", shape: [4, 0, 2], values: [])
        try writer.write(to: path)

        let file = try SafeTensorsReader(path: path)
        XCTAssertEqual(try file.floats("specials").map(\.bitPattern), specials.map(\.bitPattern))
        XCTAssertEqual(try file.info("specials").shape, [2, 5])
        XCTAssertEqual(try file.floats("scalar"), [42])
        XCTAssertEqual(try file.info("scalar").shape, [])
        XCTAssertEqual(try file.info("empty").shape, [4, 0, 2])
        XCTAssertEqual(try file.floats("empty"), [])
    }

    func testF16RoundingMatchesNumpy() throws {
        let directory = try makeTemporaryDirectory(self)
        let path = directory + "/f16.safetensors"
        let rounding = expected.f16Rounding
        let inputs = rounding.float32Bits.map(Float.init(bitPattern:))
        var writer = SafeTensorsWriter()
        try writer.add("x", shape: [inputs.count], values: inputs, as: .f16)
        try writer.write(to: path)

        let file = try SafeTensorsReader(path: path)
        XCTAssertEqual(try file.info("x").dtype, .f16)
        let halves = try file.withUnsafeRawBytes("x") { raw in
            (0..<inputs.count).map {
                UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))
            }
        }
        for (i, (got, want)) in zip(halves, rounding.float16Bits).enumerated() {
            // numpy's NaN payload is platform-dependent; any NaN stands for NaN.
            let bothNaN = isHalfNaN(got) && isHalfNaN(want)
            XCTAssertTrue(
                got == want || bothNaN,
                "input \(inputs[i]) (0x\(String(rounding.float32Bits[i], radix: 16))): "
                    + "got half 0x\(String(got, radix: 16)), numpy 0x\(String(want, radix: 16))")
        }
    }

    func testHeaderIsPaddedAndParsesAndDataIsAligned() throws {
        let directory = try makeTemporaryDirectory(self)
        let path = directory + "/layout.safetensors"
        var writer = SafeTensorsWriter(metadata: ["b": "2", "a": "quote \" and \n newline"])
        try writer.add("half", shape: [3], values: [1, 2, 3], as: .f16)
        try writer.add("float", shape: [1], values: [1])
        try writer.add("odd", shape: [1], values: [5], as: .f16)
        try writer.write(to: path)

        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        let length = bytes[0..<8].enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        XCTAssertEqual(length % 8, 0, "header length must be a multiple of 8")
        let header = Array(bytes[8..<(8 + length)])
        let text = String(decoding: header, as: UTF8.self)
        XCTAssertTrue(text.trimmingCharacters(in: .init(charactersIn: " ")).hasSuffix("}"))
        // An independent JSON parser must read it.
        let json = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(header)) as? [String: Any])
        XCTAssertEqual(json["__metadata__"] as? [String: String], writer.metadata)
        let float = try XCTUnwrap(json["float"] as? [String: Any])
        XCTAssertEqual(float["dtype"] as? String, "F32")
        XCTAssertEqual(float["data_offsets"] as? [Int], [0, 4], "wider dtypes are stored first")
        let half = try XCTUnwrap(json["half"] as? [String: Any])
        XCTAssertEqual(half["data_offsets"] as? [Int], [4, 10], "then by name")
        XCTAssertEqual(bytes.count, 8 + length + 12)
    }

    func testBytesAreDeterministicWhateverTheInsertionOrder() throws {
        let directory = try makeTemporaryDirectory(self)
        var first = SafeTensorsWriter(metadata: ["x": "1", "y": "2"])
        try first.add("a", shape: [2], values: [1, 2])
        try first.add("b", shape: [1], values: [3], as: .f16)
        try first.add("c", shape: [], values: [4])
        var second = SafeTensorsWriter(metadata: ["y": "2", "x": "1"])
        try second.add("c", shape: [], values: [4])
        try second.add("b", shape: [1], values: [3], as: .f16)
        try second.add("a", shape: [2], values: [1, 2])
        try first.write(to: directory + "/1.safetensors")
        try second.write(to: directory + "/2.safetensors")
        let one = try Data(contentsOf: URL(fileURLWithPath: directory + "/1.safetensors"))
        let two = try Data(contentsOf: URL(fileURLWithPath: directory + "/2.safetensors"))
        XCTAssertEqual(one, two)
    }

    func testWriteLeavesNoTemporaryFilesAndReplacesAtomically() throws {
        let directory = try makeTemporaryDirectory(self)
        let path = directory + "/model.safetensors"
        var writer = SafeTensorsWriter()
        try writer.add("w", shape: [2], values: [1, 2])
        try writer.write(to: path)
        try writer.add("v", shape: [1], values: [3])
        try writer.write(to: path)  // over the existing file
        XCTAssertEqual(try directoryEntries(directory), ["model.safetensors"])
        XCTAssertEqual(try SafeTensorsReader(path: path).names.sorted(), ["v", "w"])
    }

    func testFailedWriteKeepsTheDestinationAndLeavesNoTemporaryFile() throws {
        let directory = try makeTemporaryDirectory(self)
        // The destination is a directory: everything is written, then the rename fails.
        let blocked = directory + "/blocked.safetensors"
        try FileManager.default.createDirectory(atPath: blocked, withIntermediateDirectories: false)
        try FileManager.default.createDirectory(
            atPath: blocked + "/keep", withIntermediateDirectories: false)
        var writer = SafeTensorsWriter()
        try writer.add("w", shape: [1], values: [1])
        assertFormatError(.io, path: blocked) { try writer.write(to: blocked) }
        XCTAssertEqual(try directoryEntries(directory), ["blocked.safetensors"])
        XCTAssertEqual(try directoryEntries(blocked), ["keep"])

        let nowhere = directory + "/missing/dir/out.safetensors"
        assertFormatError(.io, path: nowhere) { try writer.write(to: nowhere) }
    }

    func testInvalidTensorsAreRefused() throws {
        var writer = SafeTensorsWriter()
        try writer.add("w", shape: [2, 2], values: [1, 2, 3, 4])
        assertFormatError(.invalidArgument, path: nil, tensor: "w") {
            try writer.add("w", shape: [1], values: [1])
        }
        assertFormatError(.invalidArgument, path: nil, tensor: "short") {
            try writer.add("short", shape: [2, 3], values: [1, 2, 3])
        }
        assertFormatError(.invalidArgument, path: nil, tensor: "negative") {
            try writer.add("negative", shape: [-1], values: [])
        }
        assertFormatError(.invalidArgument, path: nil, tensor: "__metadata__") {
            try writer.add("__metadata__", shape: [1], values: [1])
        }
    }

    /// Writes the tensors that `tools/make_safetensors_fixtures.py --check DIR` verifies with
    /// the reference reader and numpy. DIR is $DUO_SAFETENSORS_CHECK_DIR when set (see the
    /// script's docstring), a temporary directory otherwise; the file is also checked here.
    func testWritesFileForPythonCheck() throws {
        let spec = expected.writerCheck
        let directory: String
        if let shared = ProcessInfo.processInfo.environment["DUO_SAFETENSORS_CHECK_DIR"] {
            try FileManager.default.createDirectory(
                atPath: shared, withIntermediateDirectories: true)
            directory = shared
        } else {
            directory = try makeTemporaryDirectory(self)
        }
        var writer = SafeTensorsWriter(metadata: spec.metadata)
        for tensor in spec.tensors {
            let values = tensor.float32Bits.map(Float.init(bitPattern:))
            try writer.add(
                tensor.name, shape: tensor.shape, values: values,
                as: tensor.storage == "F16" ? .f16 : .f32)
        }
        let path = directory + "/" + spec.file
        try writer.write(to: path)

        let file = try SafeTensorsReader(path: path)
        XCTAssertEqual(file.metadata, spec.metadata)
        for tensor in spec.tensors {
            XCTAssertEqual(try file.info(tensor.name).dtype.rawValue, tensor.storage)
            XCTAssertEqual(try file.info(tensor.name).shape, tensor.shape)
        }
        let exact = try file.floats("check.rounding_f32").map(\.bitPattern)
        XCTAssertEqual(exact, expected.f16Rounding.float32Bits)
    }

    private func isHalfNaN(_ bits: UInt16) -> Bool {
        bits & 0x7C00 == 0x7C00 && bits & 0x03FF != 0
    }
}
