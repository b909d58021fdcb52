import ArgumentParser
import Cluster
import Foundation

/// The release this source tree is; the commit comes from the BuildInfo plugin.
let duoVersion = "0.2.0"

/// The `duo` command line: each subcommand parses its options and hands the work to the
/// library targets; nothing here knows a file format or the method.
@main
struct Duo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "duo",
        abstract: "Remove an unwanted concept from a text-to-image diffusion model with DUO.",
        discussion: """
            Direct Unlearning Optimization (Park et al., NeurIPS 2024) fine-tunes a LoRA on \
            pairs of images with and without the concept, without prompts, so that no \
            prompt brings the concept back while everything else the model draws stays \
            as it was.
            """,
        version: "duo \(duoVersion) (commit \(buildCommit))",
        subcommands: [
            Inspect.self, Sample.self, Synthesize.self, Unlearn.self, Merge.self, Attack.self,
            Eval.self, WorldGroup.self,
        ])

    /// ArgumentParser's own entry, with negative option values attached to their options
    /// and file-system errors shown as one line.
    static func main() {
        let arguments = CommandLineArguments.attachingNegativeNumbers(
            Array(CommandLine.arguments.dropFirst()))
        do {
            try CommandLineArguments.checkNoEmptyPath(arguments)
            var command = try parseAsRoot(arguments)
            // The documentation check (Tests/duoTests/DocumentedCommandsTests.swift) parses and
            // validates every command the docs show, without running it.
            if ProcessInfo.processInfo.environment["DUO_PARSE_ONLY"] == "1" { return }
            if ProcessGroup.launchedSize > 1, !(command is SplitsOverRanks) {
                throw UsageError(
                    "this command runs in one process: of duo's commands, mpirun -n N starts only duo synthesize, duo unlearn (DUO, DSPO) and duo eval"
                )
            }
            try command.run()
            ProcessGroup.finish()
        } catch {
            let cleaned = ErrorText.cleaned(error)
            // Under mpirun the other ranks may be waiting for this one: end them all.
            if ProcessGroup.isSplit {
                let code = exitCode(for: cleaned)
                if code != .success {
                    FileHandle.standardError.write(Data((message(for: cleaned) + "\n").utf8))
                }
                ProcessGroup.abortIfSplit(code: code.rawValue)
            }
            // A refusal is one line (ArgumentParser's would add the usage after it); help and
            // --version print as ArgumentParser prints them.
            let code = exitCode(for: cleaned)
            guard code == .success else {
                let text = message(for: cleaned)
                if !text.isEmpty { FileHandle.standardError.write(Data("Error: \(text)\n".utf8)) }
                Foundation.exit(code.rawValue)
            }
            exit(withError: cleaned)
        }
    }
}

/// A command that `mpirun -n N` may start: it splits its work over the ranks
/// (`ProcessGroup`) and writes its outputs from rank 0 alone. Any other command refuses to
/// run as more than one rank, rather than run N times over the same files.
protocol SplitsOverRanks {}
