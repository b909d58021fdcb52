import Foundation

/// A directory of this process's own, where a harness writes each input as the file a user
/// would hand to duo: most of duo's readers take a path, and fuzzing them through it covers
/// the same code a real file goes through.
public enum ScratchFiles {
    /// Made once per process; the pid keeps parallel fuzzing jobs apart.
    public static let directory: String = {
        let path = (NSTemporaryDirectory() as NSString)
            .appendingPathComponent("duo-fuzz-\(getpid())")
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }()

    /// Writes `bytes` to `name` inside the scratch directory and returns its path.
    @discardableResult
    public static func write(_ bytes: UnsafeBufferPointer<UInt8>, named name: String) -> String {
        let path = (directory as NSString).appendingPathComponent(name)
        let data = bytes.baseAddress.map { Data(bytes: $0, count: bytes.count) } ?? Data()
        guard FileManager.default.createFile(atPath: path, contents: data) else {
            // Without the file the harness would fuzz nothing; stopping says so at once.
            fatalError("cannot write the scratch file \(path)")
        }
        return path
    }

    /// Removes `name` from the scratch directory, if it is there.
    public static func remove(named name: String) {
        let path = (directory as NSString).appendingPathComponent(name)
        try? FileManager.default.removeItem(atPath: path)
    }
}
