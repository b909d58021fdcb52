/// The command line as ArgumentParser should see it: a negative number after an option
/// (`--guidance -1`, `--seed -1`) is attached as its value (`--guidance=-1`), where
/// ArgumentParser would take it for an option and report a missing value. The value is
/// then checked like any other.
enum CommandLineArguments {
    static func attachingNegativeNumbers(_ arguments: [String]) -> [String] {
        var result: [String] = []
        var i = 0
        while i < arguments.count {
            let argument = arguments[i]
            if argument == "--" { return result + arguments[i...] }
            if argument.hasPrefix("--"), !argument.contains("="), i + 1 < arguments.count,
                isNegativeNumber(arguments[i + 1])
            {
                result.append(argument + "=" + arguments[i + 1])
                i += 2
            } else {
                result.append(argument)
                i += 1
            }
        }
        return result
    }

    static func isNegativeNumber(_ text: String) -> Bool {
        guard text.hasPrefix("-"), text.count > 1 else { return false }
        return Double(text) != nil
    }

    /// The options whose value is a file or folder.
    static let pathOptions: Set<String> = [
        "--out", "--model", "--pairs", "--concept", "--weights", "--train-to", "--prefix-file",
        "--pair-prompts", "--lpips", "--lora", "--latents", "--grid", "--detector", "--clip",
        "--adapter",
    ]

    /// Refuses an empty path (`--out ""`, `--model=`) by its option's name: the file system's
    /// own error for "" names no file.
    static func checkNoEmptyPath(_ arguments: [String]) throws {
        for (i, argument) in arguments.enumerated() {
            if argument == "--" { return }
            let parts = argument.split(
                separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let option = String(parts[0])
            guard pathOptions.contains(option) else { continue }
            let value =
                parts.count == 2
                ? String(parts[1]) : i + 1 < arguments.count ? arguments[i + 1] : nil
            if value == "" { throw UsageError("\(option) is empty; give a file or folder path") }
        }
    }
}
