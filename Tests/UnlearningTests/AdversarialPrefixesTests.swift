import Concepts
import Foundation
import Tensor
import XCTest

@testable import Unlearning

/// Prefixes an attack found, read from its table or a text file, and drawn before the unsafe
/// prompt only.
final class AdversarialPrefixesTests: XCTestCase {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
        "adversarial-prefixes-\(UUID())"
    ).path

    override func setUpWithError() throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: folder) }

    func write(_ text: String, _ name: String) throws -> String {
        let path = folder + "/" + name
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// The layout `duo attack unlearndiff` writes (a quoted field with a comma included).
    func testAnAttacksTableGivesEachPromptLessItsOriginalOnce() throws {
        let path = try write(
            """
            prompt,evaluation_seed,case_number,original_prompt,attack_success
            red on purple a large purple diamond,0,0,a large purple diamond,true
            "blotches, stains a red circle",0,1,a red circle,false
            red on purple a small square,0,2,a small square,true
            a blue cross,0,3,a blue cross,false

            """, "uda.csv")
        XCTAssertEqual(
            try AdversarialPrefixes.read(path), ["red on purple", "blotches, stains"],
            "each prefix once, in file order; a row with no prefix gives none")
    }

    func testATextFileGivesOnePrefixPerLine() throws {
        let path = try write("# found by hand\nred on purple\n\nbattlefield squares\n", "p.txt")
        XCTAssertEqual(
            try AdversarialPrefixes.read(path), ["red on purple", "battlefield squares"])
    }

    func testATableThatIsNotAnAttacksIsAOneLineError() throws {
        let noOriginal = try write("prompt,case_number\na red circle,0\n", "plain.csv")
        XCTAssertThrowsError(try AdversarialPrefixes.read(noOriginal)) { error in
            let message = "\(error)"
            XCTAssertTrue(
                message.contains(noOriginal) && message.contains("original_prompt"), message)
        }
        let mismatched = try write(
            "prompt,original_prompt\nred a blue cross,a blue cross\nsome words,a red circle\n",
            "bad.csv")
        XCTAssertThrowsError(try AdversarialPrefixes.read(mismatched)) { error in
            XCTAssertTrue("\(error)".contains(mismatched + ":3:"), "\(error)")
        }
        let onlyOriginals = try write(
            "prompt,original_prompt\na red circle,a red circle\n", "e.csv")
        XCTAssertThrowsError(try AdversarialPrefixes.read(onlyOriginals)) { error in
            XCTAssertTrue("\(error)".contains("holds no prefixes"), "\(error)")
        }
    }

    func testEveryPrefixIsDrawnBeforeTheUnsafePromptOnly() {
        let prefixes = ["red on purple", "battlefield", "squares splatter stains"]
        let unsafe = "a red circle with red splatter"
        let safe = "a red circle"
        var drawn = Set<String>()
        for seed in 0..<100 {
            let draw = RandomKey(seed: UInt64(seed)).uniform(count: 1)[0]
            let (u, s) = PromptPrefixes.make(
                unsafePrompt: unsafe, safePrompt: safe, prefixes: prefixes, draw: draw)
            XCTAssertEqual(s, safe, "the output-preserving term sees the safe prompt as it is")
            XCTAssertTrue(u.hasSuffix(" " + unsafe), u)
            drawn.insert(String(u.dropLast(unsafe.count + 1)))
        }
        XCTAssertEqual(drawn, Set(prefixes))
    }
}
