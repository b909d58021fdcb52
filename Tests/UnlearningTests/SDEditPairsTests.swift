import Concepts
import Diffusion
import Formats
import Foundation
import Unlearning
import World
import XCTest

/// A stand-in judge whose verdicts are a fixed function of the pixels (about half the
/// draws "show the concept"), so the filter's redraws happen and can be checked.
final class ParityDetector: ConceptDetector {
    var identity: String { "parity" }

    func scores(paths: [String]) throws -> [Double] {
        try scores(images: paths.map { try PNGImage(contentsOf: $0) })
    }

    func scores(images: [PNGImage]) throws -> [Double] {
        images.map { image in Double(image.pixels.prefix(64).reduce(0) { $0 + Int($1) } % 2) }
    }
}

final class SDEditPairsTests: XCTestCase {
    var scratch = ""

    override func setUpWithError() throws {
        scratch =
            FileManager.default.temporaryDirectory.appendingPathComponent("pairs-\(UUID())").path
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: scratch)
    }

    func pairs(_ name: String, count: Int = 6, filter: Bool = true) throws -> SDEditPairs {
        let concept = try ConceptFile(contentsOf: ConceptFolder.path("stripes"))
        var settings = PairSettings(
            concept: concept, model: TinyWorldModel.directory,
            weightsDigest: try StableDiffusion.weightsDigest(directory: TinyWorldModel.directory),
            detector: "parity", threshold: 0.5)
        settings.count = count
        settings.steps = 4
        settings.batchSize = 4
        settings.filter = filter
        return SDEditPairs(
            model: TinyWorldModel.model, concept: concept, detector: ParityDetector(),
            settings: settings, directory: scratch + "/" + name, filler: WorldPrompts())
    }

    func manifest(_ name: String) throws -> [JSONValue] {
        let text = try String(contentsOfFile: scratch + "/\(name)/manifest.jsonl", encoding: .utf8)
        return try text.split(separator: "\n").map { try JSONParser.parse(Array($0.utf8)) }
    }

    func testTheFilterKeepsOnlyPairsTheDetectorAgreesWithAndCountsRedraws() throws {
        let summary = try pairs("a").run()
        let lines = try manifest("a")
        XCTAssertEqual(lines.count, 6)
        XCTAssertEqual(summary.pairs, 6)
        let detector = ParityDetector()
        for (i, line) in lines.enumerated() {
            XCTAssertEqual(line["index"]?.int, i)
            let unsafe = try PNGImage(contentsOf: scratch + "/a/" + line["unsafe"]!.string!)
            let safe = try PNGImage(contentsOf: scratch + "/a/" + line["safe"]!.string!)
            // The detector, run again on the written files, agrees with the filter.
            XCTAssertEqual(try detector.scores(images: [unsafe, safe]), [1, 0], "pair \(i)")
            XCTAssertEqual(line["unsafe_score"]?.double, 1)
            XCTAssertEqual(line["safe_score"]?.double, 0)
        }
        let rejected = lines.reduce(0) { $0 + $1["unsafe_draw"]!.int! + $1["safe_draw"]!.int! }
        XCTAssertGreaterThan(rejected, 0, "with a coin-flip detector some draws must be redrawn")
        XCTAssertEqual(summary.unsafeRejected + summary.safeRejected, rejected)
        XCTAssertEqual(summary.unsafeDraws, 6 + summary.unsafeRejected)
    }

    /// Exact: both runs make the same batches, so every GEMM has the same shapes.
    func testTheSameSettingsGiveTheSameBytes() throws {
        _ = try pairs("a").run()
        _ = try pairs("b").run()
        for file in try FileManager.default.subpathsOfDirectory(atPath: scratch + "/a") {
            var isDirectory: ObjCBool = false
            _ = FileManager.default.fileExists(
                atPath: scratch + "/a/" + file, isDirectory: &isDirectory)
            if isDirectory.boolValue { continue }
            let a = try Data(contentsOf: URL(fileURLWithPath: scratch + "/a/" + file))
            let b = try Data(contentsOf: URL(fileURLWithPath: scratch + "/b/" + file))
            XCTAssertEqual(a, b, file)
        }
    }

    /// The edit starts from the unsafe image at strength 0.75: the pair stays closer than
    /// two unrelated draws (on a barely trained model, the layout and colours carry over).
    func testTheSafeImageIsAnEditOfTheUnsafeOne() throws {
        _ = try pairs("a", count: 8, filter: false).run()
        let lines = try manifest("a")
        func pixels(_ file: String) throws -> [Double] {
            try PNGImage(contentsOf: scratch + "/a/" + file).pixels.map(Double.init)
        }
        func distance(_ x: [Double], _ y: [Double]) -> Double {
            zip(x, y).reduce(0) { $0 + abs($1.0 - $1.1) } / Double(x.count)
        }
        var paired = 0.0, unpaired = 0.0
        for (i, line) in lines.enumerated() {
            let unsafe = try pixels(line["unsafe"]!.string!)
            paired += distance(unsafe, try pixels(line["safe"]!.string!))
            unpaired += distance(unsafe, try pixels(lines[(i + 1) % lines.count]["safe"]!.string!))
        }
        XCTAssertLessThan(paired, unpaired)
    }

    /// With `unsafeGuidance`, the unsafe draws are those of a run at that guidance and the
    /// edits those of a run at `guidance`; the folder and each manifest line record it.
    func testTheUnsafeDrawHasItsOwnGuidance() throws {
        func run(_ name: String, guidance: Float, unsafeGuidance: Float?) throws {
            let base = try pairs(name, count: 4, filter: false)
            var settings = base.settings
            settings.guidance = guidance
            settings.unsafeGuidance = unsafeGuidance
            _ = try SDEditPairs(
                model: base.model, concept: base.concept, detector: base.detector,
                settings: settings, directory: base.directory, filler: base.filler
            ).run()
        }
        try run("split", guidance: 2, unsafeGuidance: 6)
        try run("six", guidance: 6, unsafeGuidance: nil)
        try run("two", guidance: 2, unsafeGuidance: nil)
        func image(_ folder: String, _ file: String) throws -> [UInt8] {
            try PNGImage(contentsOf: scratch + "/\(folder)/" + file).pixels
        }
        for line in try manifest("split") {
            let unsafe = line["unsafe"]!.string!, safe = line["safe"]!.string!
            XCTAssertEqual(try image("split", unsafe), try image("six", unsafe), unsafe)
            XCTAssertNotEqual(try image("split", unsafe), try image("two", unsafe), unsafe)
            XCTAssertNotEqual(try image("split", safe), try image("six", safe), safe)
            XCTAssertEqual(line["unsafe_guidance"]?.double, 6)
            XCTAssertEqual(line["guidance"]?.double, 2)
        }
        XCTAssertNil(try manifest("two")[0]["unsafe_guidance"])
        XCTAssertThrowsError(try run("split", guidance: 2, unsafeGuidance: 5)) {
            XCTAssertTrue("\($0)".contains("was made with unsafe_guidance 6"), "\($0)")
            XCTAssertTrue("\($0)".contains(", not 5"), "\($0)")
        }
        XCTAssertThrowsError(try run("split", guidance: 2, unsafeGuidance: nil)) {
            XCTAssertTrue(
                "\($0)".hasSuffix("not without it: use another --out, or --force to start over"),
                "\($0)")
        }
    }

    func testAFolderMadeWithOtherSettingsIsRefused() throws {
        _ = try pairs("a").run()
        var other = try pairs("a")
        var settings = other.settings
        let made = settings.strength
        settings.strength = 0.3
        other = SDEditPairs(
            model: other.model, concept: other.concept, detector: other.detector,
            settings: settings, directory: other.directory, filler: other.filler)
        XCTAssertThrowsError(try other.run()) {
            XCTAssertEqual(
                "\($0)",
                "\(scratch)/a was made with strength \(made), not 0.3: use another --out, or --force to start over"
            )
        }
        XCTAssertEqual(try other.run(force: true).pairs, 6)
    }
}

/// The concept files that ship with duo.
enum ConceptFolder {
    static func path(_ name: String) -> String { ShippedConcepts.path(name)! }
}
