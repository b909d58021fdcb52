import ArgumentParser

extension Duo {
    /// `duo world ...`: commands about the embedded procedural world.
    struct WorldGroup: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "world",
            abstract: "Commands about the embedded procedural world and its model.",
            subcommands: [
                Pretrain.self, Detect.self, WorldCheckCommand.self, WorldPromptsCommand.self,
            ])
    }
}
