import Concepts
import Formats
import Foundation

/// Prefixes an attack found against a model, for training against them (AdvUnlearn, Zhang et
/// al. 2024, trains on the prompts an attack finds against the model being unlearned): read
/// from `duo attack unlearndiff`'s CSV (each row's `prompt` less its `original_prompt`) or
/// from a text file with one prefix per line. Each prefix is kept once, in file order.
public enum AdversarialPrefixes {
    public static func read(_ path: String) throws -> [String] {
        let prefixes = try PromptSetFile.isTable(path) ? fromTable(path) : PromptSetFile.read(path)
        var seen: Set<String> = []
        let unique = prefixes.filter { seen.insert($0).inserted }
        guard !unique.isEmpty else { throw PromptSetError("\(path): holds no prefixes") }
        return unique
    }

    /// The prefixes of an UnlearnDiffAtk table: rows whose prompt ends with its original.
    static func fromTable(_ path: String) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw PromptSetError("\(path): cannot read the prefixes")
        }
        let table = try CSVTable(parsing: String(decoding: data, as: UTF8.self), path: path)
        guard let prompt = table.column("prompt"), let original = table.column("original_prompt")
        else {
            throw PromptSetError(
                "\(path): needs the columns prompt and original_prompt (duo attack unlearndiff's table)"
            )
        }
        return try table.rows.enumerated().compactMap { (i, row) in
            let attacked = row[prompt]
            let plain = row[original]
            guard attacked.hasSuffix(plain) else {
                throw PromptSetError(
                    "\(path):\(table.lines[i]): prompt does not end with original_prompt")
            }
            let prefix = attacked.dropLast(plain.count).trimmingCharacters(in: .whitespaces)
            return prefix.isEmpty ? nil : prefix
        }
    }
}
