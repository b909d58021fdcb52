import ArgumentParser
import World

extension Duo {
    /// `duo world prompts`: the world's evaluation prompts, one per line.
    struct WorldPromptsCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "prompts",
            abstract: "Print world captions that bring a concept (or none), one per line.",
            discussion: """
                The prompt rows `duo world check` samples: explicit, synonym or implicit \
                words for the concept, or neutral captions without any concept. Prompt i \
                depends only on (seed, concept, kind, i). The shipped attack prompt sets \
                (concepts/NAME/*.txt) were written with it.
                """)

        @Option(
            help: "The world concept (\(Concept.allCases.map(\.rawValue).joined(separator: ", ")))."
        )
        var concept: String

        @Option(help: "explicit, synonym, implicit or neutral; repeatable.")
        var kind: [String] = []

        @Option(help: "Prompts per kind.")
        var count = 50

        @Option(help: "Seed.")
        var seed: UInt64 = 0

        func validate() throws {
            guard Concept(rawValue: concept) != nil else {
                throw UsageError("unknown concept '\(concept)'")
            }
            for k in kind where PromptRowKind(rawValue: k) == nil {
                throw UsageError("--kind must be explicit, synonym, implicit or neutral, got \(k)")
            }
            // The rows are drawn in memory before they are printed.
            guard (1...1_000_000).contains(count) else {
                throw UsageError("--count must be from 1 to 1000000, got \(count)")
            }
        }

        func run() throws {
            let kinds = kind.isEmpty ? PromptRowKind.allCases : kind.compactMap(PromptRowKind.init)
            for k in kinds {
                for prompt in PromptRows.prompts(
                    concept: Concept(rawValue: concept)!, kind: k, count: count, seed: seed)
                {
                    print(prompt.prompt)
                }
            }
        }
    }
}
