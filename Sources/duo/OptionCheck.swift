import Formats
import Foundation

/// Checks of option values shared by the subcommands. NaN and infinity are refused by
/// name: every comparison with NaN is false, so a bound check alone lets it through.
enum OptionCheck {
    /// `value` must be finite and within the bounds given (`above` is exclusive): the
    /// error says "in (0, 1]" for two bounds, "a finite number >= 0" for one.
    static func finite<T: BinaryFloatingPoint & CustomStringConvertible>(
        _ value: T, _ option: String, atLeast lower: T? = nil, above: T? = nil,
        atMost upper: T? = nil
    ) throws {
        let inRange =
            value.isFinite && lower.map { value >= $0 } ?? true && above.map { value > $0 } ?? true
            && upper.map { value <= $0 } ?? true
        guard !inRange else { return }
        let number = { (bound: T) in String(format: "%g", Double(bound)) }
        let expected: String
        switch (lower ?? above, upper) {
        case (let low?, let high?):
            expected = "in \(lower == nil ? "(" : "[")\(number(low)), \(number(high))]"
        case (let low?, nil):
            expected = "a finite number \(lower == nil ? ">" : ">=") \(number(low))"
        case (nil, let high?):
            expected = "a finite number <= \(number(high))"
        case (nil, nil):
            expected = "a finite number"
        }
        throw UsageError("\(option) must be \(expected), got \(value)")
    }

    /// An output file's folder must exist and be writable before the work starts, so a
    /// long run does not fail at its last step.
    /// Refuses an existing file at `path` that is not a PNG duo wrote (`PNGMark`): a run
    /// replaces its own images, never anyone else's file.
    static func replaceablePNG(_ path: String, _ option: String) throws {
        guard FileManager.default.fileExists(atPath: path), !PNGMark.isMarked(path: path) else {
            return
        }
        throw UsageError(
            "\(option) \(path): exists and was not written by duo; remove it or give another path")
    }

    /// Refuses an existing file at `path` that is not a safetensors file whose metadata
    /// holds each of `marks` (what the command writes there).
    static func replaceableSafeTensors(_ path: String, _ option: String, marks: [String]) throws {
        guard FileManager.default.fileExists(atPath: path) else { return }
        let metadata = (try? SafeTensorsReader(path: path).metadata) ?? [:]
        guard !marks.allSatisfy({ metadata[$0] != nil }) else { return }
        throw UsageError(
            "\(option) \(path): exists and was not written by this command; remove it or give another path"
        )
    }

    static func writableFile(_ path: String, _ option: String) throws {
        var isFolder: ObjCBool = false
        if path.hasSuffix("/")
            || FileManager.default.fileExists(atPath: path, isDirectory: &isFolder)
                && isFolder.boolValue
        {
            throw UsageError("\(option) \(path): is a folder; give a file path")
        }
        let parent = PathText.parent(path)
        let folder = parent.isEmpty ? "." : parent
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder),
            isFolder.boolValue
        else {
            throw UsageError("\(option) \(path): no folder \(folder) to write it in")
        }
        guard FileManager.default.isWritableFile(atPath: folder) else {
            throw UsageError("\(option) \(path): the folder \(folder) is not writable")
        }
    }
}
