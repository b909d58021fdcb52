import Formats
import Foundation
import XCTest

final class FileDigestTests: XCTestCase {
    /// Against coreutils' sha256sum, on a file larger than one read chunk.
    func testSHA256MatchesSha256sum() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("digest-\(UUID())")
            .path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let bytes = (0..<(5 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        process.arguments = [path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(
            decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let expected = String(output.prefix(64))
        XCTAssertEqual(try FileDigest.sha256(ofFile: path), expected)
        XCTAssertThrowsError(try FileDigest.sha256(ofFile: path + ".missing")) {
            XCTAssertTrue("\($0)".contains(path + ".missing"))
        }
    }
}
