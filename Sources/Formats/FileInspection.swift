/// Human-readable summaries of files, for `duo inspect`.
public enum FileInspection {
    /// The kinds of file `report(path:)` understands.
    public enum FileKind: String, Sendable {
        case safetensors
        case png = "PNG"
    }

    /// Recognizes a file by its signature, falling back on its extension, so a damaged file
    /// named `.png` or `.safetensors` still gets that format's precise error.
    public static func kind(ofFileAt path: String) throws -> FileKind {
        let prefix = try readFilePrefix(path, count: 9)
        if prefix.starts(with: pngSignature) { return .png }
        let name = path.split(separator: "/").last ?? ""
        let fileExtension = name.contains(".") ? name.split(separator: ".").last?.lowercased() : nil
        if fileExtension == "png" { return .png }
        if fileExtension == "safetensors" { return .safetensors }
        // A safetensors header is a JSON object right after the 8-byte length.
        if prefix.count == 9, prefix[8] == UInt8(ascii: "{") { return .safetensors }
        throw FormatError(
            .unknownFormat, path: path,
            reason: "not a PNG or safetensors file (unrecognized signature and extension)")
    }

    /// A multi-line summary of the file at `path`, ending with a newline. The whole file is
    /// validated (every safetensors header check; a full PNG decode), so a damaged file
    /// throws a one-line `FormatError` instead of a partial report.
    public static func report(path: String) throws -> String {
        switch try kind(ofFileAt: path) {
        case .safetensors: return try safeTensorsReport(SafeTensorsReader(path: path))
        case .png: return try pngReport(path: path)
        }
    }

    /// Tensors in name order with dtype and shape in aligned columns, the metadata, and
    /// the total parameter count.
    static func safeTensorsReport(_ file: SafeTensorsReader) -> String {
        var lines = ["\(printable(file.path)): safetensors, \(file.tensors.count) tensors"]
        lines.append(file.metadata.isEmpty ? "metadata: (none)" : "metadata:")
        for (key, value) in file.metadata.sorted(by: { $0.key < $1.key }) {
            lines.append("  \(printable(key)) = \(printable(value))")
        }
        lines.append("tensors:")
        let tensors = file.tensors.sorted { $0.name < $1.name }
        let nameWidth = tensors.map { printable($0.name).count }.max() ?? 0
        let dtypeWidth = tensors.map(\.dtype.rawValue.count).max() ?? 0
        for tensor in tensors {
            let name = padded(printable(tensor.name), to: nameWidth)
            let dtype = padded(tensor.dtype.rawValue, to: dtypeWidth)
            lines.append("  \(name)  \(dtype)  \(tensor.shape)")
        }
        let parameters = tensors.reduce(0) { $0 + $1.elementCount }
        let bytes = tensors.reduce(0) { $0 + $1.byteCount }
        let short = parameters >= 1000 ? " (\(abbreviated(parameters)))" : ""
        lines.append("total parameters: \(parameters)\(short)")
        lines.append("total tensor bytes: \(bytes)")
        return lines.joined(separator: "\n") + "\n"
    }

    /// Size, channels, bit depth and color type, after a full decode.
    static func pngReport(path: String) throws -> String {
        let data = try readWholeFile(path)
        let info = try PNGInfo(data: data, path: path)
        _ = try PNGImage(decoding: data, path: path)  // validates the image data and CRCs
        let channelNames = ["gray", "gray+alpha", "RGB", "RGBA"]
        return """
            \(printable(path)): PNG
            size: \(info.width) x \(info.height)
            channels: \(info.channels) (\(channelNames[info.channels - 1]) when decoded)
            bit depth: \(info.bitDepth)
            color type: \(info.colorType.rawValue)

            """
    }

    private static let pngSignature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    /// Names and metadata may hold line breaks; escape them so each item stays on its line.
    private static func printable(_ text: String) -> String {
        FormatError.singleLine(text)
    }

    private static func padded(_ text: String, to width: Int) -> String {
        text + String(repeating: " ", count: max(0, width - text.count))
    }

    /// 1234 → "1.2K", 859520964 → "859.5M".
    private static func abbreviated(_ count: Int) -> String {
        let units: [(Double, String)] = [(1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")]
        for (scale, suffix) in units where Double(count) >= scale {
            let value = (Double(count) / scale * 10).rounded() / 10
            return "\(value)\(suffix)"
        }
        return "\(count)"
    }
}
