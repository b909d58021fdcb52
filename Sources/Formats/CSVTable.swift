/// A comma-separated table as RFC 4180 writes it and pandas' `to_csv` publishes prompt sets
/// (I2P, UnlearnDiffAtk): a header row, then records. A field in double quotes may hold
/// commas, line breaks and doubled quotes (`""`). Line ends may be LF or CRLF.
public struct CSVTable: Sendable {
    /// The header's column names, as written.
    public var columns: [String]
    /// The records after the header, each as long as `columns`.
    public var rows: [[String]]
    /// The line of the file each record starts on (1-based), for error messages.
    public var lines: [Int]

    /// Parses `text`, naming `path` in errors: a quote left open, a record with another
    /// number of fields than the header, a header that is empty or names a column twice.
    public init(parsing text: String, path: String) throws {
        let (records, starts) = try Self.records(Array(text.unicodeScalars), path: path)
        guard let header = records.first, !(header.count == 1 && header[0].isEmpty) else {
            throw CSVError("\(path): holds no header row")
        }
        // The BOM a spreadsheet may put before the first column name.
        columns = header.enumerated().map { i, name in
            i == 0 && name.hasPrefix("\u{FEFF}") ? String(name.dropFirst()) : name
        }
        var seen: Set<String> = []
        for name in columns where !name.isEmpty {
            guard seen.insert(name).inserted else {
                throw CSVError("\(path):1: the header names column '\(name)' twice")
            }
        }
        rows = []
        lines = []
        for (record, line) in zip(records.dropFirst(), starts.dropFirst()) {
            // A blank line (one empty field) is no record.
            if record.count == 1 && record[0].isEmpty { continue }
            guard record.count == columns.count else {
                throw CSVError(
                    "\(path):\(line): \(record.count) fields, the header has \(columns.count)")
            }
            rows.append(record)
            lines.append(line)
        }
    }

    /// A table to write: every row as long as `columns`.
    public init(columns: [String], rows: [[String]]) {
        precondition(rows.allSatisfy { $0.count == columns.count }, "a row per column")
        self.columns = columns
        self.rows = rows
        lines = rows.indices.map { $0 + 2 }
    }

    /// The table as RFC 4180 text with LF line ends, which `init(parsing:path:)` reads back
    /// as the same fields: a field holding a comma, a quote, a line break or blanks at its
    /// ends is quoted, its quotes doubled. (A record of one empty field reads as a blank
    /// line, which is none.)
    public var text: String {
        func field(_ value: String) -> String {
            let needsQuotes =
                value.contains { $0 == "," || $0 == "\"" || $0.isNewline }
                || value.first?.isWhitespace == true || value.last?.isWhitespace == true
            return needsQuotes
                ? "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : value
        }
        return ([columns] + rows).map { $0.map(field).joined(separator: ",") + "\n" }.joined()
    }

    /// The index of column `name`, nil when the header lacks it.
    public func column(_ name: String) -> Int? { columns.firstIndex(of: name) }

    /// The fields of every record and the line each starts on.
    static func records(_ scalars: [Unicode.Scalar], path: String) throws -> (
        [[String]], [Int]
    ) {
        var records: [[String]] = []
        var starts: [Int] = []
        var record: [String] = []
        var field = String.UnicodeScalarView()
        var line = 1
        var recordStart = 1
        var i = 0
        var quoted = false
        var quoteLine = 0
        func endField() {
            record.append(String(field))
            field = String.UnicodeScalarView()
        }
        func endRecord() {
            endField()
            records.append(record)
            starts.append(recordStart)
            record = []
        }
        while i < scalars.count {
            let c = scalars[i]
            if quoted {
                if c == "\"" {
                    if i + 1 < scalars.count, scalars[i + 1] == "\"" {
                        field.append("\"")
                        i += 1
                    } else {
                        quoted = false
                    }
                } else {
                    if c == "\n" { line += 1 }
                    field.append(c)
                }
            } else if c == "\"" && field.isEmpty {
                quoted = true
                quoteLine = line
            } else if c == "," {
                endField()
            } else if c == "\n" || c == "\r" {
                if c == "\r", i + 1 < scalars.count, scalars[i + 1] == "\n" { i += 1 }
                endRecord()
                line += 1
                recordStart = line
            } else {
                field.append(c)
            }
            i += 1
        }
        guard !quoted else {
            throw CSVError("\(path):\(quoteLine): a quoted field is never closed")
        }
        if !field.isEmpty || !record.isEmpty { endRecord() }
        return (records, starts)
    }
}

/// A CSV file that cannot be read as a table, in one line naming the file and line.
public typealias CSVError = OneLineError
