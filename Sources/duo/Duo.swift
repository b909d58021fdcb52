import ArgumentParser

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
        subcommands: [Inspect.self, Sample.self, Synthesize.self, Unlearn.self, Merge.self, Attack.self, Eval.self, Pretrain.self, Detect.self, WorldGroup.self])
}
