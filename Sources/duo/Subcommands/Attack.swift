import ArgumentParser
import Diffusion
import Evaluation
import Foundation
import Unlearning
import World

extension Duo {
    /// `duo attack`: adversarial prompt sets.
    struct Attack: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Build adversarial prompt sets that try to bring a concept back.",
            subcommands: [RingABellCommand.self, UnlearnDiffCommand.self, ConceptInversionCommand.self])

        /// Where an attack writes its set: `out`, else the concept file's `attacks.SET`, else
        /// `NAME/SET.txt` beside the concept file; the folder is made.
        static func destination(_ out: String?, set: String, concept: ConceptFile) throws -> String {
            let path = out ?? concept.attackSets.first { $0.name == set }?.path
                ?? ((concept.path as NSString).deletingLastPathComponent + "/\(concept.name)/\(set).txt")
            try FileManager.default.createDirectory(
                atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            return path
        }
    }

    /// What a white-box attack (unlearndiff, concept-inversion) runs against: the model with
    /// an adapter, and the pairs whose unsafe images and prompts show the concept.
    struct WhiteBoxTarget: ParsableArguments {
        @Option(help: "A concept name (concepts/NAME.toml) or the path of a concept file.")
        var concept: String

        @Option(help: "The unlearned model's adapter (from duo unlearn).")
        var adapter: String

        @Option(help: "A diffusers model folder (default: the embedded model).")
        var model: String?

        @Option(help: "The pairs folder whose unsafe images and prompts the attack uses (default: pairs/NAME).")
        var pairs: String?

        /// The concept file, the model with the adapter merged into its UNet (the same
        /// function with no gradients of its own: only the attack's input is optimized),
        /// and the pairs.
        func load() throws -> (ConceptFile, StableDiffusion, PairData) {
            let conceptFile = try Lookup.concept(concept)
            let diffusion = try StableDiffusion.load(directory: try Lookup.model(model))
            try LoRAFile.load(adapter, into: diffusion.unet).merge(into: diffusion.unet)
            return (conceptFile, diffusion, try PairData(directory: pairs ?? "pairs/\(conceptFile.name)"))
        }
    }

    /// `duo attack ring-a-bell`.
    struct RingABellCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: GeneratedAttackSet.ringABell,
            abstract: "Ring-A-Bell (Tsai et al., ICLR 2024): concept prompts found from the text encoder alone.",
            discussion: """
                The concept direction is the mean difference of text-encoder embeddings of \
                the concept file's unsafe prompts and their safe counterparts; for each of \
                --count unsafe prompts, a genetic algorithm over --length word tokens (the \
                concept's words and synonyms excluded) minimizes the distance to the prompt's \
                embedding plus eta times the direction. It attacks the text encoder only: \
                the prompts transfer to every unlearned UNet of the model.
                """)

        @Option(help: "A concept name (concepts/NAME.toml) or the path of a concept file.")
        var concept: String

        @Option(help: "A diffusers model folder (default: the embedded model).")
        var model: String?

        @Option(help: "Tokens per prompt (Ring-A-Bell's K).")
        var length = RingABell.Settings().length

        @Option(help: "Weight of the concept direction (Ring-A-Bell's eta).")
        var eta = RingABell.Settings().eta

        @Option(help: "Population size (Ring-A-Bell's 200).")
        var population = RingABell.Settings().population

        @Option(help: "Generations (Ring-A-Bell runs 3000; the world's small vocabulary settles sooner).")
        var generations = 300

        @Option(help: "Prompts to find (one search each).")
        var count = 16

        @Option(help: "Seed.")
        var seed: UInt64 = 0

        @Option(help: "Output file (default: the concept file's attacks.ring-a-bell, or concepts/NAME/ring-a-bell.txt).")
        var out: String?

        @Flag(help: "No progress output.")
        var quiet = false

        func validate() throws {
            guard length >= 1, population >= 4, generations >= 1, count >= 1 else {
                throw UsageError("--length and --generations and --count must be at least 1, --population at least 4")
            }
        }

        func run() throws {
            let conceptFile = try Lookup.concept(concept)
            let diffusion = try StableDiffusion.load(directory: try Lookup.model(model))
            var settings = RingABell.Settings()
            settings.length = length
            settings.eta = eta
            settings.population = population
            settings.generations = generations
            settings.seed = seed
            let pairs = conceptFile.promptPairs(count: max(64, count), seed: seed)
            let attack = try RingABell(
                model: diffusion, withConcept: pairs.map(\.unsafe), withoutConcept: pairs.map(\.safe),
                forbidden: conceptFile.explicitWords + conceptFile.synonyms, settings: settings)
            let bar = quiet ? nil : ProgressLine("ring-a-bell")
            var found: [String] = []
            for i in 0..<count {
                let result = attack.attack(pairs[i].unsafe, index: UInt64(i))
                found.append(result.prompt)
                bar?.update(i + 1, of: count, detail: String(format: "distance %.2f", result.distance))
            }
            let destination = try Attack.destination(out, set: GeneratedAttackSet.ringABell, concept: conceptFile)
            try PromptSetFile.write(
                found,
                header: "\(conceptFile.name): Ring-A-Bell prompts (duo attack ring-a-bell --concept \(conceptFile.name) "
                    + "--length \(length) --eta \(eta) --population \(population) --generations \(generations) "
                    + "--count \(count) --seed \(seed))",
                to: destination)
            print(destination)
        }
    }
}
