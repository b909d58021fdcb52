import Foundation
import XCTest

@testable import Formats

/// The fixtures written by tools/make_safetensors_fixtures.py and what they must decode to
/// (Fixtures/expected.json). Values there come from the reference `safetensors` package,
/// numpy, and bit math in the script; none is produced by the code under test.
struct Expected: Decodable {
    struct TensorFile: Decodable {
        let file: String
        let metadata: [String: String]
        let tensors: [String: Tensor]
    }
    struct Tensor: Decodable {
        let dtype: String
        let shape: [Int]
        let float32Bits: [UInt32]
    }
    struct OtherDTypes: Decodable {
        struct Entry: Decodable {
            let dtype: String
            let shape: [Int]
        }
        let file: String
        let tensors: [String: Entry]
    }
    struct Malformed: Decodable {
        let file: String
        let kind: String
        let tensor: String?
        let referenceError: String
    }
    struct PNG: Decodable {
        let width: Int
        let height: Int
        let channels: Int
        let bitDepth: Int
        let colorType: String
        let pixels: [UInt8]
    }
    struct Rounding: Decodable {
        let float32Bits: [UInt32]
        let float16Bits: [UInt16]
    }
    struct WriterCheck: Decodable {
        struct Tensor: Decodable {
            let name: String
            let storage: String
            let shape: [Int]
            let float32Bits: [UInt32]
        }
        let file: String
        let metadata: [String: String]
        let tensors: [Tensor]
    }

    let tensors: TensorFile
    let otherDtypes: OtherDTypes
    let malformed: [Malformed]
    let png: [String: PNG]
    let corruptPng: [String]
    let f16Rounding: Rounding
    let writerCheck: WriterCheck

    /// Loaded once for all tests.
    static let shared: Expected = {
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: fixturePath("expected.json")))
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            return try decoder.decode(Expected.self, from: data)
        } catch {
            // A broken fixture set is a setup failure of every test, not a recoverable case.
            preconditionFailure("cannot load Fixtures/expected.json: \(error)")
        }
    }()
}

/// The path of a file under Fixtures/, e.g. `fixturePath("png/rgb8.png")`.
func fixturePath(_ relative: String) -> String {
    let root =
        Bundle.module.url(forResource: "Fixtures", withExtension: nil)
        ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures")
    return root.appendingPathComponent(relative).path
}

/// A fresh empty directory, removed when the test ends.
func makeTemporaryDirectory(_ test: XCTestCase) throws -> String {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("duo-formats-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url.path
}

/// Asserts that `body` throws a `FormatError` of `kind` whose one-line description names
/// `path` (and `tensor`, when given); returns the error for further checks.
@discardableResult
func assertFormatError<T>(
    _ kind: FormatError.Kind, path: String?, tensor: String? = nil,
    file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> T
) -> FormatError? {
    do {
        _ = try body()
        XCTFail("expected a \(kind) error, nothing was thrown", file: file, line: line)
        return nil
    } catch let error as FormatError {
        let text = error.description
        XCTAssertEqual(error.kind, kind, "wrong kind for: \(text)", file: file, line: line)
        XCTAssertEqual(error.path, path, file: file, line: line)
        XCTAssertEqual(error.tensor, tensor, file: file, line: line)
        XCTAssertFalse(text.contains("\n"), "multi-line message: \(text)", file: file, line: line)
        if let path {
            XCTAssertTrue(
                text.hasPrefix(path + ": "), "no file in: \(text)", file: file, line: line)
        }
        if let tensor {
            XCTAssertTrue(
                text.contains("'\(tensor)'"), "no tensor in: \(text)", file: file, line: line)
        }
        return error
    } catch {
        XCTFail("expected FormatError, got \(type(of: error)): \(error)", file: file, line: line)
        return nil
    }
}

/// Lists a directory's entries, sorted (to check that no temporary file was left behind).
func directoryEntries(_ path: String) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: path).sorted()
}
