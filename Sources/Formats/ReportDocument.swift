import Foundation

/// A report as blocks (headings, paragraphs, tables, images, plots), written out as
/// Markdown and as a self-contained HTML page from the same blocks, so that the two never
/// say different things.
public struct ReportDocument {
    public enum Block {
        case heading(String, level: Int)
        case paragraph(String)
        case table(header: [String], rows: [[String]])
        /// A PNG beside the report (`path` relative to its folder), with a row label.
        case image(label: String, alt: String, path: String)
        /// An SVG written beside the report (`path`), inlined in HTML.
        case plot(svg: String, alt: String, path: String)
    }

    public var title: String
    public var blocks: [Block] = []

    public init(title: String) {
        self.title = title
    }

    public mutating func add(_ block: Block) {
        blocks.append(block)
    }

    public var markdown: String {
        var text = "# \(title)\n\n"
        for block in blocks {
            switch block {
            case .heading(let heading, let level):
                text += String(repeating: "#", count: level) + " \(heading)\n\n"
            case .paragraph(let paragraph):
                text += paragraph + "\n\n"
            case .table(let header, let rows):
                let cells = { (row: [String]) in
                    "| "
                        + row.map { $0.replacingOccurrences(of: "|", with: "\\|") }
                        .joined(separator: " | ") + " |\n"
                }
                text += cells(header) + "|" + header.map { _ in "---" }.joined(separator: "|")
                text += "|\n" + rows.map(cells).joined() + "\n"
            case .image(let label, let alt, let path):
                text += "\(label): ![\(alt)](\(path))\n\n"
            case .plot(_, let alt, let path):
                text += "![\(alt)](\(path))\n\n"
            }
        }
        return text
    }

    /// The page, with each image read from `directory` and embedded as a data URI (no
    /// script, no network).
    public func html(directory: String) throws -> String {
        var body = "<h1>\(Self.escape(title))</h1>\n"
        var openGrid = false
        for block in blocks {
            if case .image = block {
            } else if openGrid {
                body += "</table>\n"
                openGrid = false
            }
            switch block {
            case .heading(let heading, let level):
                body += "<h\(level)>\(Self.escape(heading))</h\(level)>\n"
            case .paragraph(let paragraph):
                body += "<p>\(Self.escape(paragraph))</p>\n"
            case .table(let header, let rows):
                body += "<table><tr>" + header.map { "<th>\(Self.escape($0))</th>" }.joined()
                body += "</tr>\n" + rows.map(Self.row).joined() + "</table>\n"
            case .image(let label, let alt, let path):
                if !openGrid { body += "<table class=\"grid\">\n" }
                openGrid = true
                let data = try Data(contentsOf: URL(fileURLWithPath: directory + "/" + path))
                body += "<tr><th>\(Self.escape(label))</th><td><img alt=\"\(Self.escape(alt))\" "
                body += "src=\"data:image/png;base64,\(data.base64EncodedString())\"></td></tr>\n"
            case .plot(let svg, _, _):
                body += svg + "\n"
            }
        }
        if openGrid { body += "</table>\n" }
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>\(Self.escape(title))</title>
            <style>\(Self.style)</style></head>
            <body>
            \(body)</body></html>

            """
    }

    static let style = [
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}",
        "table{border-collapse:collapse;margin:1em 0}",
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}",
        "table.grid td,table.grid th{border:none}img{image-rendering:pixelated}",
    ].joined()

    static func row(_ cells: [String]) -> String {
        "<tr>" + cells.map { "<td>\(escape($0))</td>" }.joined() + "</tr>\n"
    }

    /// Text safe inside HTML elements and attribute values.
    public static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(
            of: "<", with: "&lt;"
        )
        .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
