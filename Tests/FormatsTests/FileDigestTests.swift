import Formats
import Foundation
import XCTest

final class FileDigestTests: XCTestCase {
    /// Against coreutils' sha256sum, on a file larger than one read chunk.
    func testSHA256MatchesSha256sum() throws {
        let path = try temporaryFile(
            bytes: (0..<(5 << 20)).map {
                UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13)
            })
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertEqual(try FileDigest.sha256(ofFile: path), try sha256sum(path))
        XCTAssertThrowsError(try FileDigest.sha256(ofFile: path + ".missing")) {
            XCTAssertTrue("\($0)".contains(path + ".missing"))
        }
    }

    /// A text's digest, and several files' digest (each file after its name and size), are
    /// sha256sum's of the same bytes laid end to end.
    func testTextAndFileListDigestsMatchSha256sumOfTheirBytes() throws {
        let text = "a café — ☕ \n"
        let textFile = try temporaryFile(bytes: Array(text.utf8))
        defer { try? FileManager.default.removeItem(atPath: textFile) }
        XCTAssertEqual(FileDigest.sha256(ofText: text), try sha256sum(textFile))
        XCTAssertEqual(FileDigest.sha256(ofText: ""), try sha256sum("/dev/null"))

        let first: [UInt8] = Array(repeating: 7, count: 100_000)
        let second: [UInt8] = (0..<300).map { UInt8($0 % 251) }
        let files = try [first, second].map(temporaryFile)
        let laidOut =
            Array("unet\n100000\n".utf8) + first + Array("vae\n300\n".utf8) + second
        let whole = try temporaryFile(bytes: laidOut)
        defer { (files + [whole]).forEach { try? FileManager.default.removeItem(atPath: $0) } }
        XCTAssertEqual(
            try FileDigest.sha256(ofFiles: files, names: ["unet", "vae"]), try sha256sum(whole))
    }

    private func temporaryFile(bytes: [UInt8]) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("digest-\(UUID())")
            .path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    private func sha256sum(_ path: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        process.arguments = [path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(
            decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return String(output.prefix(64))
    }
}
