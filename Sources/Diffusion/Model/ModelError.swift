/// A problem with a model folder, named by file and key, with what was expected and found.
public struct ModelError: Error, CustomStringConvertible, Equatable {
    public let file: String
    public let key: String?
    public let message: String

    public init(file: String, key: String? = nil, _ message: String) {
        self.file = file
        self.key = key
        self.message = message
    }

    /// One line: `path: key 'name': what went wrong`.
    public var description: String {
        let line = key.map { "\(file): key '\($0)': \(message)" } ?? "\(file): \(message)"
        return line.replacingOccurrences(of: "\n", with: " ")
    }
}
