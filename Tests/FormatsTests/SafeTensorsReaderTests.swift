import XCTest

@testable import Formats

/// Reading files written by the reference `safetensors` package, and refusing broken ones.
final class SafeTensorsReaderTests: XCTestCase {
    private let expected = Expected.shared

    func testReadsValuesAsThePythonSideDecodesThem() throws {
        let file = try SafeTensorsReader(path: fixturePath(expected.tensors.file))
        XCTAssertEqual(Set(file.names), Set(expected.tensors.tensors.keys))
        for (name, want) in expected.tensors.tensors {
            let info = try file.info(name)
            XCTAssertEqual(info.dtype.rawValue, want.dtype, name)
            XCTAssertEqual(info.shape, want.shape, name)
            XCTAssertEqual(info.elementCount, want.float32Bits.count, name)
            // Bit patterns, so -0, subnormals, infinities and NaN payloads are all pinned.
            let bits = try file.floats(name).map(\.bitPattern)
            XCTAssertEqual(
                bits, want.float32Bits, "\(name): values differ from the Python decoding")
        }
    }

    func testScalarAndEmptyShapes() throws {
        let file = try SafeTensorsReader(path: fixturePath(expected.tensors.file))
        // Scalar: shape [] holds one element (3.25 in the fixture script).
        XCTAssertEqual(try file.info("text_encoder.f32_scalar").shape, [])
        XCTAssertEqual(try file.floats("text_encoder.f32_scalar"), [3.25])
        XCTAssertEqual(try file.floats("text_encoder.f32_empty"), [])
        XCTAssertEqual(try file.floats("vae.bf16_empty"), [])
        XCTAssertEqual(try file.info("vae.bf16_empty").byteCount, 0)
    }

    func testMetadataAndFileOrder() throws {
        let file = try SafeTensorsReader(path: fixturePath(expected.tensors.file))
        XCTAssertEqual(file.metadata, expected.tensors.metadata)
        let starts = file.tensors.map(\.dataOffsets.lowerBound)
        XCTAssertEqual(starts, starts.sorted(), "tensors must be listed in data-offset order")
    }

    func testFloat32BufferMatchesFloats() throws {
        let file = try SafeTensorsReader(path: fixturePath(expected.tensors.file))
        let name = "text_encoder.f32_matrix"
        let inPlace = try file.withUnsafeFloat32Buffer(name) { Array($0) }
        XCTAssertEqual(
            inPlace.map(\.bitPattern), expected.tensors.tensors[name]!.float32Bits)
        assertFormatError(.unsupportedDType, path: file.path, tensor: "unet.f16_cube") {
            try file.withUnsafeFloat32Buffer("unet.f16_cube") { $0.count }
        }
    }

    func testRawBytesOfOtherDTypes() throws {
        let path = fixturePath(expected.otherDtypes.file)
        let file = try SafeTensorsReader(path: path)
        for (name, want) in expected.otherDtypes.tensors {
            let info = try file.info(name)
            XCTAssertEqual(info.dtype.rawValue, want.dtype, name)
            XCTAssertEqual(info.shape, want.shape, name)
            XCTAssertEqual(info.byteCount, info.elementCount * info.dtype.byteSize, name)
            assertFormatError(.unsupportedDType, path: path, tensor: name) {
                try file.floats(name)
            }
        }
        // np.arange(3, dtype=int64) in the fixture script.
        let int64s = try file.withUnsafeRawBytes("ints.i64") { raw in
            (0..<3).map {
                Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self))
            }
        }
        XCTAssertEqual(int64s, [0, 1, 2])
    }

    func testMissingTensorNamesFileAndTensor() throws {
        let path = fixturePath(expected.tensors.file)
        let file = try SafeTensorsReader(path: path)
        XCTAssertFalse(file.contains("unet.nope"))
        assertFormatError(.missingTensor, path: path, tensor: "unet.nope") {
            try file.floats("unet.nope")
        }
    }

    func testMissingFileNamesPath() {
        let path = fixturePath("does-not-exist.safetensors")
        assertFormatError(.fileNotFound, path: path) { try SafeTensorsReader(path: path) }
    }

    func testEveryMalformedFixtureThrowsAOneLineError() {
        XCTAssertGreaterThanOrEqual(expected.malformed.count, 15)
        for malformed in expected.malformed {
            let path = fixturePath(malformed.file)
            let kind = FormatError.Kind(rawValue: malformed.kind)
            XCTAssertNotNil(kind, "unknown kind \(malformed.kind) in expected.json")
            let error = assertFormatError(kind ?? .io, path: path, tensor: malformed.tensor) {
                try SafeTensorsReader(path: path)
            }
            XCTAssertNotNil(error, "\(malformed.file) (reference: \(malformed.referenceError))")
        }
    }

    func testMessagesSayWhatWasExpected() throws {
        // Spot checks of the wording users see for the common corruptions.
        let cases: [(String, String)] = [
            ("malformed/shape_mismatch.safetensors", "shape [2, 3] of F32 needs 24 bytes"),
            ("malformed/unknown_dtype.safetensors", "unknown dtype 'F7'"),
            ("malformed/overlapping_offsets.safetensors", "overlap tensor 'a'"),
            ("malformed/truncated_data.safetensors", "file truncated"),
            ("malformed/header_too_long.safetensors", "header length 1000 is larger than the file"),
            ("malformed/short.safetensors", "file is 3 bytes"),
        ]
        for (file, phrase) in cases {
            do {
                _ = try SafeTensorsReader(path: fixturePath(file))
                XCTFail("\(file) was accepted")
            } catch {
                XCTAssertTrue("\(error)".contains(phrase), "\(file): \(error)")
            }
        }
    }
}
