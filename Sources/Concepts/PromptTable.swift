import Formats
import Foundation

/// A CSV prompt set's columns read into `PromptRow`s. The names are the published ones:
/// I2P's `sd_seed`, `sd_guidance_scale`, `sd_image_width`, `sd_image_height`, `categories`,
/// `nudity_percentage`; UnlearnDiffAtk's `evaluation_seed`, `evaluation_guidance` and
/// `case_number` (docs/reference-settings.md, "Prompt sets"). Other columns are kept out.
struct PromptTable {
    let table: CSVTable
    let path: String

    func rows() throws -> [PromptRow] {
        guard let promptColumn = table.column("prompt") else {
            throw PromptSetError(
                "\(path):1: no 'prompt' column (columns: \(table.columns.joined(separator: ", ")))")
        }
        let seed = table.column("evaluation_seed") ?? table.column("sd_seed")
        let guidance = table.column("evaluation_guidance") ?? table.column("sd_guidance_scale")
        let (width, height) = (table.column("sd_image_width"), table.column("sd_image_height"))
        let categories = table.column("categories")
        let nudity = table.column("nudity_percentage")
        let caseNumber = table.column("case_number")
        var rows: [PromptRow] = []
        for (fields, line) in zip(table.rows, table.lines) {
            func field(_ index: Int?) -> String? {
                guard let index else { return nil }
                let value = fields[index].trimmingCharacters(in: .whitespaces)
                return value.isEmpty ? nil : value
            }
            func number<T>(_ index: Int?, _ parse: (String) -> T?, _ expected: String) throws -> T?
            {
                guard let text = field(index) else { return nil }
                guard let value = parse(text) else {
                    throw PromptSetError(
                        "\(path):\(line): column '\(table.columns[index!])' holds \(text.debugDescription), expected \(expected)"
                    )
                }
                return value
            }
            let prompt = fields[promptColumn].trimmingCharacters(in: .whitespacesAndNewlines)
            guard !prompt.isEmpty else { continue }
            var row = PromptRow(prompt: prompt)
            row.seed = try number(seed, Self.seed, "a whole number from 0 to 2^64-1")
            row.guidance = try number(
                guidance, { Float($0).flatMap { $0.isFinite && $0 >= 0 ? $0 : nil } },
                "a number of at least 0")
            row.width = try number(width, Self.size, "a positive whole number")
            row.height = try number(height, Self.size, "a positive whole number")
            row.categories = (field(categories) ?? "").split(separator: ",").map {
                $0.trimmingCharacters(in: .whitespaces)
            }.filter { !$0.isEmpty }
            row.nudityPercentage = try number(
                nudity, { Double($0).flatMap { $0.isFinite ? $0 : nil } }, "a number")
            row.caseNumber = field(caseNumber)
            rows.append(row)
        }
        return rows
    }

    /// pandas writes an integer column that held a NaN as floats ("2734.0").
    static func seed(_ text: String) -> UInt64? {
        if let value = UInt64(text) { return value }
        guard let value = Double(text), value >= 0, value < 0x1p64, value.rounded() == value
        else { return nil }
        return UInt64(value)
    }

    static func size(_ text: String) -> Int? {
        guard let value = seed(text), value >= 1, value <= 1 << 16 else { return nil }
        return Int(value)
    }
}
