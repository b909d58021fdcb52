import Foundation
import TestSupport

/// What a `duo` run printed and how it exited.
struct DuoResult {
    let status: Int32
    let stdout: String
    let stderr: String
}

/// The built `duo` executable: $DUO_EXECUTABLE if set, else next to the test bundle (on
/// Linux the xctest runner sits in the products directory, e.g. .build/debug; on macOS the
/// .xctest bundle does), else the package's .build/debug.
func duoExecutable() throws -> URL {
    let environment = ProcessInfo.processInfo.environment
    if let path = environment["DUO_EXECUTABLE"] { return URL(fileURLWithPath: path) }
    var directories = [Bundle.main.bundleURL, Bundle.main.bundleURL.deletingLastPathComponent()]
    for bundle in Bundle.allBundles where bundle.bundleURL.pathExtension == "xctest" {
        directories.append(bundle.bundleURL.deletingLastPathComponent())
    }
    let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    directories.append(packageRoot.appendingPathComponent(".build/debug"))
    for directory in directories {
        let candidate = directory.appendingPathComponent("duo")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
    }
    // A failure, not a skip: a suite that silently skips every CLI test proves nothing.
    throw DuoNotFound(searched: directories.map(\.path))
}

struct DuoNotFound: Error, CustomStringConvertible {
    let searched: [String]
    var description: String { "duo executable not found in \(searched); build it first" }
}

/// Runs `duo` with `arguments`; output goes through files, not pipes, so a chatty run cannot
/// block on a full pipe buffer.
/// With `parseOnly`, duo parses and validates the arguments and exits before any work;
/// `directory` is the folder it runs in (default: the test's own).
func runDuo(_ arguments: [String], parseOnly: Bool = false, in directory: String? = nil) throws
    -> DuoResult
{
    try runCommand(
        try duoExecutable().path, arguments,
        environment: parseOnly ? ["DUO_PARSE_ONLY": "1"] : [:], in: directory)
}

/// Runs the program at `path` with `arguments` and `environment` added to this process's.
func runCommand(
    _ path: String, _ arguments: [String], environment: [String: String] = [:],
    in directory: String? = nil
) throws -> DuoResult {
    let scratch = FileManager.default.temporaryDirectory
        .appendingPathComponent("duo-run-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: scratch) }
    let outURL = scratch.appendingPathComponent("stdout")
    let errURL = scratch.appendingPathComponent("stderr")
    _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
    let out = try FileHandle(forWritingTo: outURL)
    let err = try FileHandle(forWritingTo: errURL)

    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    if !environment.isEmpty {
        process.environment = ProcessInfo.processInfo.environment.merging(
            environment, uniquingKeysWith: { $1 })
    }
    process.standardOutput = out
    process.standardError = err
    try process.run()
    process.waitUntilExit()
    try out.close()
    try err.close()
    return DuoResult(
        status: process.terminationStatus,
        stdout: try String(contentsOf: outURL, encoding: .utf8),
        stderr: try String(contentsOf: errURL, encoding: .utf8))
}

/// An embedded-architecture model after one training step (`duo pretrain --steps 1`): the
/// real shapes at almost no cost, made once per test process and shared by the CLI tests.
let tinyWorldModel: String = {
    let root = scratchFolder("duo-tiny-model")
    let result = try! runDuo([
        "world", "pretrain", "--out", root, "--steps", "1", "--batch-size", "2",
    ])
    precondition(result.status == 0, result.stderr)
    return root + "/model"
}()
