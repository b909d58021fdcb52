import Formats
import Foundation

/// What `duo inspect DIR` prints for a model folder: its components (from
/// `model_index.json`, or the folder itself when it is one component), and for each its
/// class, weights files, parameter count and dtypes. Reads only headers and configs.
public enum ModelFolderSummary {
    public static func report(directory: String) throws -> String {
        let indexPath = (directory as NSString).appendingPathComponent("model_index.json")
        if FileManager.default.fileExists(atPath: indexPath) {
            let index = try ConfigFile(path: indexPath)
            var lines = [
                "\(directory): diffusers model folder (\(try index.string("_class_name", default: "unknown pipeline")))"
            ]
            for name in index.values.keys.sorted() where !name.hasPrefix("_") {
                guard case .array(let entry) = index.values[name]!, entry.count == 2,
                    case .string(let className) = entry[1]
                else { continue }
                let path = (directory as NSString).appendingPathComponent(name)
                lines.append(try component(name: name, className: className, path: path))
            }
            return lines.joined(separator: "\n") + "\n"
        }
        let configPath = (directory as NSString).appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: configPath) else {
            throw ModelError(
                file: directory, "not a model folder (expected model_index.json or config.json)")
        }
        let className = try ConfigFile(path: configPath).string("_class_name", default: "component")
        return try component(
            name: (directory as NSString).lastPathComponent, className: className,
            path: directory) + "\n"
    }

    /// One line per component, plus one per weights file.
    private static func component(name: String, className: String, path: String) throws -> String {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory),
            isDirectory.boolValue
        else {
            throw ModelError(
                file: path, "missing component folder '\(name)' listed in model_index.json")
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: path).sorted()
        var lines = ["  \(name): \(className)"]
        for file in files where file.hasSuffix(".safetensors") {
            let reader = try SafeTensorsReader(
                path: (path as NSString).appendingPathComponent(file))
            let parameters = reader.tensors.reduce(0) { $0 + $1.elementCount }
            let dtypes = Set(reader.tensors.map(\.dtype.rawValue)).sorted().joined(separator: ", ")
            lines.append(
                "    \(file): \(reader.tensors.count) tensors, \(formatCount(parameters)) parameters, \(dtypes)"
            )
        }
        let others = files.filter { !$0.hasSuffix(".safetensors") }
        if !others.isEmpty { lines.append("    " + others.joined(separator: ", ")) }
        return lines.joined(separator: "\n")
    }

    /// 859520964 -> "859.5M (859520964)"
    private static func formatCount(_ n: Int) -> String {
        let (value, unit): (Double, String) =
            n >= 1_000_000
            ? (Double(n) / 1e6, "M") : n >= 1000 ? (Double(n) / 1e3, "K") : (Double(n), "")
        return unit.isEmpty ? "\(n)" : String(format: "%.1f%@ (%d)", value, unit, n)
    }
}
