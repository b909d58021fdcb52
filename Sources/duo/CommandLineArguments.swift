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
}
