import Evaluation
import Foundation
import XCTest

/// `duo eval` continues a killed run's staging folder; what the killed run was writing when
/// it died (a hidden `AtomicFile` temporary) is not part of it.
final class ReportFolderTests: XCTestCase {
    func testTakingOverAStoppedRunDropsItsHalfWrittenFiles() throws {
        let scratch = NSTemporaryDirectory() + "report-folder-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let destination = scratch + "/report"
        // No process has this id (Linux's largest is 4194304), so its staging folder is
        // abandoned.
        let abandoned = destination + ".tmp-4194305"
        let images = abandoned + "/images/original/explicit"
        try FileManager.default.createDirectory(atPath: images, withIntermediateDirectories: true)
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: images + "/00000.png"))
        try Data().write(to: URL(fileURLWithPath: images + "/.00001.png.tmp-4194305-x1"))
        try Data(#"{"inputs_sha256":"abc"}"#.utf8).write(
            to: URL(fileURLWithPath: abandoned + "/run.json"))

        let folder = try ReportFolder(destination: destination, inputsDigest: "abc")
        XCTAssertEqual(folder.continued, abandoned)
        let staging = ReportFolder.stagingPath(for: destination) + "/images/original/explicit"
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: staging), ["00000.png"])
        folder.discard()
    }
}
