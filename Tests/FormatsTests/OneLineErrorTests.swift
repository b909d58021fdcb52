import Foundation
import XCTest

@testable import Formats

/// The CLI prints an error's description as its one line, so a file name or prompt with a
/// line break in it must not split the message.
final class OneLineErrorTests: XCTestCase {
    func testALineBreakInTheMessageIsEscaped() {
        let error = OneLineError("concepts/a\nb.toml: key 'words.explicit': expected a list")
        XCTAssertEqual(
            error.description, "concepts/a\\nb.toml: key 'words.explicit': expected a list")
        XCTAssertFalse(error.description.contains("\n"))
        XCTAssertEqual(
            (error as LocalizedError).errorDescription, error.description,
            "ArgumentParser prints errorDescription")
    }
}
