import Diffusion
import Foundation

/// Says once, on stderr, what the model will not read of a prompt: tokens past its
/// length, words its vocabulary lacks. The prompt is still used, as diffusers uses it.
enum PromptCheck {
    static func warn(_ prompts: [String], tokenizer: CLIPTokenizer) {
        var said = Set<String>()
        for prompt in prompts where said.insert(prompt).inserted {
            let (truncated, unknown) = tokenizer.losses(in: prompt)
            let shown = prompt.count > 60 ? String(prompt.prefix(60)) + "..." : prompt
            if truncated > 0 {
                printWarning(
                    "the prompt \(shown.debugDescription) is cut after \(tokenizer.maxLength - 2) tokens ("
                        + "\(truncated) more are not read)")
            }
            if !unknown.isEmpty {
                printWarning(
                    "the prompt \(shown.debugDescription) holds words the model's vocabulary lacks: "
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
                printWarning(
                    "\(cut) of the \(prompts.count) prompts of set '\(name)' are cut after \(tokenizer.maxLength - 2) tokens"
                )
            }
            if !unknown.isEmpty {
                printWarning(
                    "set '\(name)' holds words the model's vocabulary lacks: \(unknown.prefix(10).joined(separator: ", "))"
                )
            }
        }
    }

    private static func printWarning(_ text: String) {
        FileHandle.standardError.write(Data("duo: warning: \(text)\n".utf8))
    }
}
