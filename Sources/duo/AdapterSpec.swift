import Diffusion
import Formats
import Foundation

/// How options name adapters: `PATH` or `PATH@SCALE` (1: as trained), and for one model of
/// `duo eval` several joined by commas, stacked (`a.safetensors,b.safetensors@0.5`). A value
/// that names an existing file is that file, '@' or ',' in its name or not.
enum AdapterSpec {
    /// One adapter: `PATH` or `PATH@SCALE`; the file must exist and read as safetensors.
    static func parse(_ text: String, option: String) throws -> AdapterFile {
        var file = AdapterFile(path: text)
        if !FileManager.default.fileExists(atPath: text), let at = text.lastIndex(of: "@") {
            let scaleText = String(text[text.index(after: at)...])
            guard let scale = Float(scaleText), scale.isFinite else {
                throw UsageError(
                    "\(option) \(text): expected PATH or PATH@SCALE with a finite SCALE, got scale \(scaleText.debugDescription)"
                )
            }
            file = AdapterFile(path: String(text[..<at]), scale: scale)
        }
        guard FileManager.default.fileExists(atPath: file.path) else {
            throw UsageError("\(option) \(file.path): no such file")
        }
        _ = try SafeTensorsReader(path: file.path)
        return file
    }

    /// Several adapters stacked into one model: `SPEC[,SPEC...]`.
    static func parseStack(_ text: String, option: String) throws -> [AdapterFile] {
        if FileManager.default.fileExists(atPath: text) { return [try parse(text, option: option)] }
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard !parts.contains(where: \.isEmpty) else {
            throw UsageError("\(option) \(text): an empty adapter path between commas")
        }
        return try parts.map { try parse($0, option: option) }
    }

    /// `--lora` values with `--lora-scale`: the scale applies to a single adapter; stacked
    /// ones carry theirs in `PATH@SCALE`.
    static func stack(_ values: [String], loraScale: Float?) throws -> [AdapterFile] {
        var files = try values.map { try parse($0, option: "--lora") }
        if let loraScale {
            guard files.count == 1, files[0].scale == 1 else {
                throw UsageError(
                    "--lora-scale scales one --lora; give each of several adapters its scale as PATH@SCALE"
                )
            }
            files[0].scale = loraScale
        }
        return files
    }

    /// How a prompt file's header or a report names a stack.
    static func describe(_ files: [AdapterFile]) -> String {
        files.map { $0.scale == 1 ? $0.path : "\($0.path)@\($0.scale)" }.joined(separator: " + ")
    }
}
