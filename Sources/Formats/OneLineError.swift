import Foundation

/// An error that is one line of text: what could not be done, naming the file, key or
/// option involved and what was expected. Each module names its own use of it
/// (`SamplingError`, `DetectorError`, `AttackError`, ...) so a throw site says which layer
/// refused; the CLI prints the line as is.
public struct OneLineError: Error, Equatable, Sendable, CustomStringConvertible {
    public let description: String

    /// `message` with any line breaks escaped, so the error stays on one line.
    public init(_ message: String) { description = FormatError.singleLine(message) }
}

// ArgumentParser prints `errorDescription` when there is one (see FormatError).
extension OneLineError: LocalizedError {
    public var errorDescription: String? { description }
}
