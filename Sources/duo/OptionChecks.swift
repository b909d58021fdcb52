import Diffusion
import Formats
import Foundation

/// Checks of option values shared by the subcommands. NaN and infinity are refused by
/// name: every comparison with NaN is false, so a bound check alone lets it through.
enum OptionCheck {
    /// `value` must be finite and within the bounds given (`above` is exclusive): the
    /// error says "in (0, 1]" for two bounds, "a finite number >= 0" for one.
    static func finite<T: BinaryFloatingPoint & CustomStringConvertible>(
        _ value: T, _ option: String, atLeast lower: T? = nil, above: T? = nil, atMost upper: T? = nil
    ) throws {
        let inRange = value.isFinite && lower.map { value >= $0 } ?? true && above.map { value > $0 } ?? true
            && upper.map { value <= $0 } ?? true
        guard !inRange else { return }
        let number = { (bound: T) in String(format: "%g", Double(bound)) }
        let expected: String
        switch (lower ?? above, upper) {
        case (let low?, let high?):
            expected = "in \(lower == nil ? "(" : "[")\(number(low)), \(number(high))]"
        case (let low?, nil):
            expected = "a finite number \(lower == nil ? ">" : ">=") \(number(low))"
        case (nil, let high?):
            expected = "a finite number <= \(number(high))"
        case (nil, nil):
            expected = "a finite number"
        }
        throw UsageError("\(option) must be \(expected), got \(value)")
    }

    /// An output file's folder must exist and be writable before the work starts, so a
    /// long run does not fail at its last step.
    static func writableFile(_ path: String, _ option: String) throws {
        var isFolder: ObjCBool = false
        if path.hasSuffix("/") || FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) && isFolder.boolValue {
            throw UsageError("\(option) \(path): is a folder; give a file path")
        }
        let parent = PathText.parent(path)
        let folder = parent.isEmpty ? "." : parent
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else {
            throw UsageError("\(option) \(path): no folder \(folder) to write it in")
        }
        guard FileManager.default.isWritableFile(atPath: folder) else {
            throw UsageError("\(option) \(path): the folder \(folder) is not writable")
        }
    }
}

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
                isNegativeNumber(arguments[i + 1]) {
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

/// Foundation's file errors as one line naming the path and the reason, in place of their
/// domain, code and user-info dump.
enum ErrorText {
    static func cleaned(_ error: Error) -> Error {
        let domain = (error as NSError).domain
        guard domain == NSCocoaErrorDomain || domain == NSPOSIXErrorDomain else { return error }
        let path = FileProblem.path(error).map { "\($0): " } ?? ""
        return OneLineError(path + FileProblem.reason(error))
    }
}

/// Says once, on stderr, what the model will not read of a prompt: tokens past its
/// length, words its vocabulary lacks. The prompt is still used, as diffusers uses it.
enum PromptCheck {
    static func warn(_ prompts: [String], tokenizer: CLIPTokenizer) {
        var said = Set<String>()
        for prompt in prompts where said.insert(prompt).inserted {
            let (truncated, unknown) = tokenizer.losses(in: prompt)
            let shown = prompt.count > 60 ? String(prompt.prefix(60)) + "..." : prompt
            if truncated > 0 {
                printWarning("the prompt \(shown.debugDescription) is cut after \(tokenizer.maxLength - 2) tokens ("
                    + "\(truncated) more are not read)")
            }
            if !unknown.isEmpty {
                printWarning("the prompt \(shown.debugDescription) holds words the model's vocabulary lacks: "
                    + unknown.prefix(10).joined(separator: ", "))
            }
        }
    }

    /// One line per prompt set whose prompts the model will not read whole.
    static func warn(sets: [(name: String, prompts: [String])], tokenizer: CLIPTokenizer) {
        for (name, prompts) in sets {
            let losses = prompts.map { tokenizer.losses(in: $0) }
            let cut = losses.filter { $0.truncatedTokens > 0 }.count
            let unknown = Set(losses.flatMap(\.unknownWords)).sorted()
            if cut > 0 {
                printWarning("\(cut) of the \(prompts.count) prompts of set '\(name)' are cut after \(tokenizer.maxLength - 2) tokens")
            }
            if !unknown.isEmpty {
                printWarning("set '\(name)' holds words the model's vocabulary lacks: \(unknown.prefix(10).joined(separator: ", "))")
            }
        }
    }

    private static func printWarning(_ text: String) {
        FileHandle.standardError.write(Data("duo: warning: \(text)\n".utf8))
    }
}
