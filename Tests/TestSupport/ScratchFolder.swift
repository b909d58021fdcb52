import Foundation

/// `<temporary directory>/<name>-<pid>`, removed with everything in it when the test process
/// exits: the models and pairs such a folder holds are shared by several test classes, so no
/// one class's tearDown may remove it.
public func scratchFolder(_ name: String) -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent(
        "\(name)-\(getpid())"
    ).path
    ScratchFolders.lock.lock()
    defer { ScratchFolders.lock.unlock() }
    if ScratchFolders.paths.isEmpty {
        atexit { ScratchFolders.removeAll() }
    }
    ScratchFolders.paths.insert(path)
    return path
}

private enum ScratchFolders {
    static let lock = NSLock()
    nonisolated(unsafe) static var paths: Set<String> = []

    static func removeAll() {
        lock.lock()
        defer { lock.unlock() }
        for path in paths { try? FileManager.default.removeItem(atPath: path) }
    }
}
