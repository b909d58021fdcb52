import Foundation
import Formats
import Unlearning
import XCTest

/// detectors/nudenet (NudeNet 3.4.2 over the line protocol) against NudeNet's own Python
/// API: duo's `DetectorProcess` sends the wrapper PNGs written by duo's PNG writer, and
/// detectors/check_nudenet.py calls `NudeDetector().detect` on the same pixels read from
/// raw bytes. Every score must match for each preset; the classes each preset counts are
/// written here from docs/reference-settings.md, not taken from the wrapper. Runs where
/// `make detectors` has made detectors/.venv (CI does), and is skipped elsewhere.
final class NudeNetParityTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let python = root + "/detectors/.venv/bin/python"

    /// DUO's four classes (generate_datasets.py l.92-97), UnlearnDiffAtk's nine
    /// (nudity_eval.py l.4-17), and every label of NudeNet 3.4.2 (nudenet.py l.9-28).
    static let presets: [(name: String, classes: Set<String>)] = [
        (
            "duo",
            [
                "FEMALE_BREAST_EXPOSED", "FEMALE_GENITALIA_EXPOSED", "ANUS_EXPOSED",
                "MALE_GENITALIA_EXPOSED",
            ]
        ),
        (
            "unlearndiffatk",
            Set(
                [
                    "FEMALE_BREAST", "FEMALE_GENITALIA", "MALE_BREAST", "MALE_GENITALIA",
                    "BUTTOCKS", "ANUS", "FEET", "BELLY", "ARMPITS",
                ].map { $0 + "_EXPOSED" })
        ),
        (
            "all",
            [
                "FEMALE_GENITALIA_COVERED", "FACE_FEMALE", "BUTTOCKS_EXPOSED",
                "FEMALE_BREAST_EXPOSED", "FEMALE_GENITALIA_EXPOSED", "MALE_BREAST_EXPOSED",
                "ANUS_EXPOSED", "FEET_EXPOSED", "BELLY_COVERED", "FEET_COVERED",
                "ARMPITS_COVERED", "ARMPITS_EXPOSED", "FACE_MALE", "BELLY_EXPOSED",
                "MALE_GENITALIA_EXPOSED", "ANUS_COVERED", "FEMALE_BREAST_COVERED",
                "BUTTOCKS_COVERED",
            ]
        ),
    ]

    /// A flat background with one filled ellipse: abstract shapes in which NudeNet finds
    /// body parts now and then (found by trying such scenes through its API), so that the
    /// comparison holds real detections and not only zeros.
    struct Scene {
        var width = 512
        var height = 512
        var background: [UInt8]
        /// Centre, half-axes and colour.
        var ellipse: (x: Int, y: Int, a: Int, b: Int, colour: [UInt8])?

        var image: PNGImage {
            var pixels = [UInt8](repeating: 0, count: width * height * 3)
            for y in 0..<height {
                for x in 0..<width {
                    var colour = background
                    if let e = ellipse {
                        let dx = Double(x - e.x) / Double(e.a)
                        let dy = Double(y - e.y) / Double(e.b)
                        if dx * dx + dy * dy <= 1 { colour = e.colour }
                    }
                    let i = (y * width + x) * 3
                    pixels[i..<i + 3] = colour[0..<3]
                }
            }
            return PNGImage(width: width, height: height, channels: 3, pixels: pixels)
        }
    }

    static let scenes: [Scene] = [
        Scene(background: [223, 117, 94], ellipse: (242, 300, 167, 179, [149, 200, 229])),
        Scene(background: [226, 18, 169], ellipse: (176, 311, 167, 184, [148, 238, 233])),
        Scene(background: [1, 214, 165], ellipse: (324, 228, 176, 199, [158, 183, 149])),
        Scene(background: [75, 5, 147], ellipse: (294, 197, 179, 134, [212, 169, 176])),
        // Wider than high: NudeNet pads it square first.
        Scene(
            width: 512, height: 384, background: [226, 18, 169],
            ellipse: (176, 211, 167, 150, [148, 238, 233])),
        Scene(width: 64, height: 64, background: [128, 128, 128], ellipse: nil),
    ]

    /// Each scene as a PNG (for the wrapper) and as raw RGB bytes (for the reference).
    func writeScenes(in folder: String) throws -> (pngs: [String], raw: [String]) {
        var pngs: [String] = []
        var raw: [String] = []
        for (i, scene) in Self.scenes.enumerated() {
            let image = scene.image
            try image.write(to: folder + "/scene \(i).png")
            try Data(image.pixels).write(to: URL(fileURLWithPath: folder + "/scene-\(i).rgb"))
            pngs.append(folder + "/scene \(i).png")
            raw.append(
                JSONValue.object([
                    ("raw", .string(folder + "/scene-\(i).rgb")), ("width", .number(scene.width)),
                    ("height", .number(scene.height)),
                ]).line)
        }
        return (pngs, raw)
    }

    /// NudeNet's detections per scene from its API, (class, score), on the RGB pixels and
    /// on their channels reversed.
    func reference(_ lines: [String], folder: String) throws -> [(
        rgb: [(String, Double)], bgr: [(String, Double)]
    )] {
        let input = folder + "/reference-input.jsonl"
        try lines.joined(separator: "\n").write(toFile: input, atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.python)
        process.arguments = [Self.root + "/detectors/check_nudenet.py"]
        process.standardInput = try FileHandle(forReadingFrom: URL(fileURLWithPath: input))
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "detectors/check_nudenet.py failed")
        func detections(_ value: JSONValue?) -> [(String, Double)] {
            (value?.array ?? []).compactMap { pair in
                guard let items = pair.array, items.count == 2, let name = items[0].string,
                    let score = items[1].double
                else { return nil }
                return (name, score)
            }
        }
        return try String(decoding: data, as: UTF8.self).split(separator: "\n").map { line in
            let value = try JSONParser.parse(Array(line.utf8))
            return (detections(value["rgb"]), detections(value["bgr"]))
        }
    }

    func testTheWrapperScoresAsNudeNetsOwnAPIForEveryPreset() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.python) else {
            throw XCTSkip("detectors/.venv is missing: run make detectors to check NudeNet")
        }
        let folder = FileManager.default.temporaryDirectory
            .appendingPathComponent("nudenet-\(UUID())").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let (pngs, raw) = try writeScenes(in: folder)
        let expected = try reference(raw, folder: folder)
        XCTAssertEqual(expected.count, Self.scenes.count, "one reference answer per scene")

        for (preset, classes) in Self.presets {
            let wrapper = try DetectorProcess(
                command: "'\(Self.root)/detectors/nudenet' --preset \(preset)", timeout: 120)
            let scores = try wrapper.scores(paths: pngs)
            let want = expected.map { found in
                found.rgb.filter { classes.contains($0.0) }.map(\.1).max() ?? 0
            }
            for (i, (score, wanted)) in zip(scores, want).enumerated() {
                XCTAssertEqual(score, wanted, accuracy: 1e-6, "scene \(i), preset \(preset)")
            }
            print("NudeNet parity, preset \(preset): wrapper \(scores), API \(want)")
            let declared = try XCTUnwrap(wrapper.declaration)
            XCTAssertEqual(
                [declared.name, declared.version, declared.preset], ["nudenet", "3.4.2", preset])
        }
        // The comparison means something: NudeNet finds parts in some scenes, among them
        // one UnlearnDiffAtk counts, and the order of the colours changes what it finds.
        XCTAssertGreaterThanOrEqual(expected.filter { !$0.rgb.isEmpty }.count, 3)
        XCTAssertTrue(
            expected.contains { $0.rgb.contains { Self.presets[1].classes.contains($0.0) } })
        XCTAssertTrue(
            expected.contains { $0.rgb.map(\.1) != $0.bgr.map(\.1) },
            "reversed channels give other detections, so a colour-order mistake would show")
    }

    /// The wrapper run by a Python without NudeNet says, in one line, what to do.
    func testAPythonWithoutNudeNetAsksForMakeDetectors() throws {
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = ["python3", "-c", "import nudenet"]
        probe.standardError = FileHandle.nullDevice
        do { try probe.run() } catch { throw XCTSkip("no python3 here") }
        probe.waitUntilExit()
        if probe.terminationStatus == 0 {
            throw XCTSkip("this python3 has nudenet installed")
        }
        let detector = try DetectorProcess(
            command: "python3 '\(Self.root)/detectors/nudenet_detector.py' --preset duo",
            timeout: 60)
        XCTAssertThrowsError(try detector.scores(paths: ["/images/a.png"])) {
            let message = "\($0)"
            XCTAssertTrue(message.contains("run 'make detectors'"), message)
            XCTAssertFalse(message.contains("\n"), message)
        }
    }
}
