#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
import Formats
import Foundation

/// Where `duo eval` builds a report and how it takes its place: the report is written in a
/// staging folder beside the destination (`DIR.tmp-PID`) and moved into place at the end,
/// so a failed or killed run never leaves half a report. The destination may be absent,
/// an empty folder, or an earlier report (replaced whole); anything else is refused before
/// any work, since duo never deletes what it did not write. A run that dies leaves its
/// staging folder, with run.json naming the digest of its inputs
/// (`EvaluationRun.inputsDigest`); the next run with the same inputs takes it over and draws
/// only the images missing from it, and removes any other.
public struct ReportFolder {
    public let destination: String
    public let staging: String
    /// The staging folder of a dead run this one continues (nil: a fresh one).
    public private(set) var continued: String?

    /// What a report folder holds (`EvaluationReport.write`); a folder holding anything
    /// else is not one.
    static let reportEntries: Set<String> = [
        "report.html", "report.md", "results.json", "plot.svg", "grids", "images", "run.json",
    ]

    /// This process's staging folder for `destination`.
    public static func stagingPath(for destination: String) -> String {
        // Beside "out/", not inside it.
        PathText.withoutTrailingSlash(destination) + ".tmp-\(getpid())"
    }

    /// Checks `destination`; takes over the staging folder of a dead run with the same
    /// `inputsDigest`, removes the others', and makes this run's staging folder.
    public init(destination: String, inputsDigest: String) throws {
        self.destination = PathText.withoutTrailingSlash(destination)
        staging = Self.stagingPath(for: destination)
        try Self.checkReplaceable(destination)
        let files = FileManager.default
        if files.fileExists(atPath: staging) { try files.removeItem(atPath: staging) }
        for abandoned in Self.abandonedStaging(of: destination) {
            if continued == nil, Self.digest(in: abandoned) == inputsDigest,
                (try? files.moveItem(atPath: abandoned, toPath: staging)) != nil
            {
                continued = abandoned
                Self.removeUnfinishedWrites(in: staging)
            } else {
                try? files.removeItem(atPath: abandoned)
            }
        }
        if continued == nil {
            try OutputFolder.create(staging, for: "the report's staging folder")
        }
        try AtomicFile.write(
            JSONValue.object([("inputs_sha256", .string(inputsDigest))]).text(),
            to: staging + "/run.json")
    }

    /// Deletes the temporary files (`.NAME.tmp-PID-…`, `AtomicFile`'s) a killed run left
    /// half-written in a folder taken over: their writer is gone and they are no output.
    static func removeUnfinishedWrites(in folder: String) {
        let files = FileManager.default
        guard let walk = files.enumerator(atPath: folder) else { return }
        for case let path as String in walk {
            let name = (path as NSString).lastPathComponent
            if name.hasPrefix("."), name.contains(".tmp-") {
                try? files.removeItem(atPath: folder + "/" + path)
            }
        }
    }

    /// The inputs digest a staging folder's run.json names, nil when it has none.
    static func digest(in folder: String) -> String? {
        guard let data = FileManager.default.contents(atPath: folder + "/run.json"),
            let value = try? JSONParser.parse(Array(data))
        else { return nil }
        return value["inputs_sha256"]?.string
    }

    /// Moves the finished report into place, replacing an earlier report.
    public func commit() throws {
        let files = FileManager.default
        try Self.checkReplaceable(destination)
        let previous = destination + ".old-\(getpid())"
        if files.fileExists(atPath: destination) {
            do { try files.moveItem(atPath: destination, toPath: previous) } catch {
                throw OneLineError(
                    "\(destination): cannot move the earlier report aside (\(FileProblem.reason(error)))"
                )
            }
        }
        do { try files.moveItem(atPath: staging, toPath: destination) } catch {
            try? files.moveItem(atPath: previous, toPath: destination)
            throw OneLineError(
                "\(destination): cannot move the report into place (\(FileProblem.reason(error)))")
        }
        try? files.removeItem(atPath: previous)
    }

    /// Removes the staging folder of a run that failed.
    public func discard() {
        try? FileManager.default.removeItem(atPath: staging)
    }

    public static func checkReplaceable(_ path: String) throws {
        let files = FileManager.default
        var isFolder: ObjCBool = false
        guard files.fileExists(atPath: path, isDirectory: &isFolder) else { return }
        guard isFolder.boolValue else {
            throw OneLineError("--out \(path): is a file; give a folder for the report")
        }
        let entries = (try? files.contentsOfDirectory(atPath: path)) ?? []
        guard
            entries.isEmpty
                || (entries.contains("results.json") && Set(entries).isSubset(of: reportEntries))
        else {
            throw OneLineError(
                "--out \(path): holds files that are not a duo eval report (\(entries.sorted().prefix(3).joined(separator: ", "))); "
                    + "give an empty or new folder")
        }
    }

    /// Staging folders `NAME.tmp-PID` beside `destination` whose process is gone, and
    /// which hold nothing but what a report holds, in name order.
    static func abandonedStaging(of destination: String) -> [String] {
        let files = FileManager.default
        let url = URL(fileURLWithPath: destination)
        let parent = url.deletingLastPathComponent().path
        let prefix = url.lastPathComponent + ".tmp-"
        return ((try? files.contentsOfDirectory(atPath: parent)) ?? []).sorted().compactMap {
            entry in
            guard entry.hasPrefix(prefix), let pid = Int32(entry.dropFirst(prefix.count)),
                pid != getpid()
            else { return nil }
            let path = parent + "/" + entry
            guard let held = try? files.contentsOfDirectory(atPath: path),
                Set(held).isSubset(of: reportEntries)
            else { return nil }
            // kill(pid, 0) fails with ESRCH only when no such process exists.
            return kill(pid, 0) != 0 && errno == ESRCH ? path : nil
        }
    }
}
