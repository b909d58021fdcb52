import Foundation
import Unlearning
import XCTest

/// `duo_defaults.json`: a folder without it gets DUO's reference settings; a typo or a
/// value out of range is an error naming the file and the key.
final class ModelDefaultsFileTests: XCTestCase {
    var folder = ""

    override func setUpWithError() throws {
        folder =
            FileManager.default.temporaryDirectory.appendingPathComponent(
                "model-defaults-\(UUID())"
            ).path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: folder) }

    func write(_ text: String) throws {
        try text.write(toFile: folder + "/duo_defaults.json", atomically: true, encoding: .utf8)
    }

    func testNoFileMeansTheReferenceSettings() throws {
        XCTAssertEqual(
            try ModelDefaults(directory: folder).unlearningSettings(), UnlearningSettings())
    }

    func testTheFileSetsOnlyWhatItGives() throws {
        try write(
            #"{"unlearning": {"beta": 250, "targets": ["convs"]}, "ring-a-bell": {"generations": 7, "token_space": "words"}, "concept-inversion": {"max_train_steps": 9, "scale_lr": false, "initializer_token": "vocabulary-mean", "captions": "prompts"}}"#
        )
        let defaults = try ModelDefaults(directory: folder)
        var expected = UnlearningSettings()
        expected.beta = 250
        expected.targets = [.convs]
        XCTAssertEqual(defaults.unlearningSettings(), expected)
        XCTAssertEqual(defaults.ringABellGenerations, 7)
        XCTAssertEqual(defaults.ringABellTokenSpace, .words)
        var inversion = ConceptInversionDefaults()
        inversion.maxTrainSteps = 9
        inversion.scaleLR = false
        inversion.initializerToken = "vocabulary-mean"
        inversion.captions = .prompts
        XCTAssertEqual(defaults.conceptInversion, inversion, "the rest is the reference's")
        XCTAssertNil(defaults.unlearnDiffTimesteps)
        try write(#"{"unlearndiff": {"timesteps": 10, "iterations": 20}}"#)
        let attack = try ModelDefaults(directory: folder)
        XCTAssertEqual(attack.unlearnDiffTimesteps, 10)
        XCTAssertEqual(attack.unlearnDiffIterations, 20)
        XCTAssertEqual(attack.unlearningSettings(), UnlearningSettings())
    }

    func testMistakesNameTheFileAndKey() throws {
        for (text, expected) in [
            (#"{"unlearning": {"betta": 250}}"#, "key 'unlearning.betta': unknown key"),
            (#"{"unlearning": {"beta": -1}}"#, "key 'beta': expected a number"),
            (#"{"unlearning": {"targets": ["mlp"]}}"#, "key 'targets': unknown target"),
            (
                #"{"ring-a-bell": {"token_space": "any"}}"#,
                "key 'token_space': expected one of all, words"
            ),
            (
                #"{"concept-inversion": {"captions": "scene"}}"#,
                "key 'captions': expected one of object, style, person, prompts"
            ),
            (#"{"concept-inversion": {"scale_lr": 1}}"#, "key 'scale_lr': expected true or false"),
            (#"{"concept-inversion": {"flip_p": 2}}"#, "key 'flip_p': expected a number"),
            (#"{"concept-inversion": {"steps": 2}}"#, "key 'concept-inversion.steps': unknown key"),
            (#"{"unlearndiff": {"steps": 40}}"#, "key 'unlearndiff.steps': unknown key"),
            (#"{"unlearndiff": {"timesteps": 2.5}}"#, "key 'timesteps': expected a whole number"),
            (#"{"unlearndiff": {"iterations": 0}}"#, "key 'iterations': expected a number"),
            (#"[1, 2]"#, "expected a JSON object"),
            ("{", "not a JSON object"),
        ] {
            try write(text)
            XCTAssertThrowsError(try ModelDefaults(directory: folder), text) { error in
                XCTAssertTrue("\(error)".contains("duo_defaults.json"), "\(error)")
                XCTAssertTrue("\(error)".contains(expected), "\(error)")
            }
        }
    }
}
