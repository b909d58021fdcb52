import Concepts
import Formats
import Foundation

/// The prompt set `duo attack unlearndiff` writes: a CSV in UnlearnDiffAtk's layout, which
/// `duo eval` reads with each prompt's seed and guidance (`prompt`, `evaluation_seed`,
/// `evaluation_guidance`, `sd_image_width`, `sd_image_height`, `case_number`), and beside
/// them what the attack found for the prompt. Every row names the attack that wrote it
/// (`duo_attack`: its command without `--count` and `--out`), so that a rerun of the same
/// attack goes on after the rows it finds and another attack does not mix its rows in.
public enum UnlearnDiffPromptSet {
    /// One attacked prompt.
    public struct Row: Hashable, Sendable {
        public var target: UnlearnDiffAttack.Target
        public var caseNumber: String
        public var outcome: UnlearnDiffAttack.Outcome

        public init(
            target: UnlearnDiffAttack.Target, caseNumber: String, outcome: UnlearnDiffAttack.Outcome
        ) {
            self.target = target
            self.caseNumber = caseNumber
            self.outcome = outcome
        }
    }

    /// The column that marks a file as written by this attack (`Duo.Attack.writtenByAnAttack`).
    public static let commandColumn = "duo_attack"
    static let columns = [
        "prompt", "evaluation_seed", "evaluation_guidance", "sd_image_width", "sd_image_height",
        "case_number", "original_prompt", "attack_success", "attack_iterations",
        "attack_timestep", "attack_loss", commandColumn,
    ]

    /// The file's text.
    public static func text(_ rows: [Row], command: String) -> String {
        CSVTable(
            columns: columns,
            rows: rows.map { row in
                let (target, outcome) = (row.target, row.outcome)
                return [
                    outcome.prompt, String(target.seed), "\(target.guidance)",
                    target.width.map(String.init) ?? "", target.height.map(String.init) ?? "",
                    row.caseNumber, target.prompt, outcome.success ? "true" : "false",
                    String(outcome.iterations), outcome.timestep.map(String.init) ?? "",
                    outcome.loss.map { "\($0)" } ?? "", command,
                ]
            }
        ).text
    }

    /// Writes `rows` atomically.
    public static func write(_ rows: [Row], command: String, to path: String) throws {
        do { try AtomicFile.write(text(rows, command: command), to: path) } catch {
            throw PromptSetError("\(path): cannot write (\(FileProblem.reason(error)))")
        }
    }

    /// The rows of `path` that the attack `command` finished on the first of `targets`, in
    /// order; none when there is no file. A file of another attack, or whose rows are not
    /// these targets', is an error naming it.
    public static func finished(
        _ path: String, command: String, targets: [UnlearnDiffAttack.Target]
    )
        throws -> [Row]
    {
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        guard let data = FileManager.default.contents(atPath: path),
            let text = String(data: data, encoding: .utf8)
        else { throw PromptSetError("\(path): cannot read the file as UTF-8 text") }
        let table = try CSVTable(parsing: text, path: path)
        guard table.columns == columns else {
            throw PromptSetError(
                "\(path): not a set duo attack unlearndiff writes (columns \(table.columns.joined(separator: ", ")))"
            )
        }
        return try zip(table.rows, table.lines).enumerated().map { i, record in
            let (fields, line) = record
            let row = try Self.row(fields, line: line, path: path)
            guard fields[11] == command else {
                throw PromptSetError(
                    "\(path):\(line): written by another attack (\(fields[11])); remove the file or give another --out"
                )
            }
            guard i < targets.count, row.target == targets[i] else {
                throw PromptSetError(
                    "\(path):\(line): attacked \(row.target.prompt.debugDescription) at seed \(row.target.seed), not the targets' prompt \(i + 1); remove the file or give another --out"
                )
            }
            return row
        }
    }

    static func row(_ fields: [String], line: Int, path: String) throws -> Row {
        func bad(_ column: Int) -> PromptSetError {
            PromptSetError(
                "\(path):\(line): column '\(columns[column])' holds \(fields[column].debugDescription)"
            )
        }
        func optional<T>(_ column: Int, _ parse: (String) -> T?) throws -> T? {
            guard !fields[column].isEmpty else { return nil }
            guard let value = parse(fields[column]) else { throw bad(column) }
            return value
        }
        guard let seed = UInt64(fields[1]) else { throw bad(1) }
        guard let guidance = Float(fields[2]) else { throw bad(2) }
        guard let iterations = Int(fields[8]) else { throw bad(8) }
        guard fields[7] == "true" || fields[7] == "false" else { throw bad(7) }
        let target = UnlearnDiffAttack.Target(
            prompt: fields[6], seed: seed, guidance: guidance, height: try optional(4) { Int($0) },
            width: try optional(3) { Int($0) })
        let outcome = UnlearnDiffAttack.Outcome(
            prompt: fields[0], success: fields[7] == "true", iterations: iterations,
            timestep: try optional(9) { Int($0) }, loss: try optional(10) { Float($0) })
        return Row(target: target, caseNumber: fields[5], outcome: outcome)
    }
}
