import Concepts
import ArgumentParser
import Diffusion
import Evaluation
import Formats
import Foundation
import Unlearning
import World

extension Duo {
    /// `duo attack`: adversarial prompt sets.
    struct Attack: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Build adversarial prompt sets that try to bring a concept back.",
            subcommands: [
                RingABellCommand.self, UnlearnDiffCommand.self, ConceptInversionCommand.self,
            ])

        /// Where an attack writes its set, checked before the attack runs: `out`, else the
        /// concept file's `attacks.SET`, else `NAME/SET.EXT` beside the concept file (EXT:
        /// `fileExtension`). The shipped concept files are part of duo, never written: their
        /// sets go to `attacks/NAME/SET.EXT` here. An existing file is replaced only if an
        /// attack wrote it.
        static func destination(
            _ out: String?, set: String, concept: ConceptFile, fileExtension: String = "txt"
        ) throws -> String {
            let files = FileManager.default
            let path: String
            if let out {
                path = out
            } else if ShippedConcepts.contains(concept.path) {
                path = "attacks/\(concept.name)/\(set).\(fileExtension)"
            } else {
                let folder = PathText.parent(concept.path)
                path =
                    concept.attackSets.first { $0.name == set }?.path
                    ?? ((folder.isEmpty ? "." : folder) + "/\(concept.name)/\(set).\(fileExtension)")
            }
            let option = out == nil ? "the \(set) set's file" : "--out"
            var isFolder: ObjCBool = false
            if path.hasSuffix("/") || files.fileExists(atPath: path, isDirectory: &isFolder) {
                guard !isFolder.boolValue, !path.hasSuffix("/") else {
                    throw UsageError(
                        "\(option) \(path): is a folder; give the path of a prompt file")
                }
                guard writtenByAnAttack(path) else {
                    throw UsageError(
                        "\(option) \(path): exists and was not written by duo attack; remove it or give another --out"
                    )
                }
            }
            let parent = PathText.parent(path)
            if !parent.isEmpty { try OutputFolder.create(parent, for: option) }
            return path
        }

        /// Whether the prompt file at `path` begins with the header `duo attack` writes: a
        /// `#` line naming the command, or a CSV header with the column naming it
        /// (`UnlearnDiffPromptSet.commandColumn`).
        static func writtenByAnAttack(_ path: String) -> Bool {
            guard let handle = FileHandle(forReadingAtPath: path) else { return false }
            defer { try? handle.close() }
            let head = String(decoding: handle.readData(ofLength: 4096), as: UTF8.self)
            let firstLine = head.split(separator: "\n", maxSplits: 1).first ?? ""
            return firstLine.hasPrefix("# ") && firstLine.contains("(duo attack ")
                || firstLine.split(separator: ",").contains {
                    $0 == UnlearnDiffPromptSet.commandColumn
                }
        }
    }

    /// What a white-box attack (unlearndiff, concept-inversion) runs against: the model with
    /// an adapter, and the pairs whose unsafe images and prompts show the concept.
    struct WhiteBoxTarget: ParsableArguments {
        @OptionGroup var conceptOption: ConceptOption

        @Option(
            help:
                "The unlearned model's adapter (from duo unlearn: a LoRA or a UNet weights file) as PATH or PATH@SCALE; repeat to attack several stacked."
        )
        var adapter: [String]

        @OptionGroup var modelOption: ModelOption

        @Option(
            help:
                "The pairs folder whose unsafe images and prompts the attack uses (default: pairs/NAME)."
        )
        var pairs: String?

        /// The adapters, stacked.
        func adapters() throws -> [AdapterFile] {
            guard !adapter.isEmpty else {
                throw UsageError("give the unlearned model's adapter with --adapter")
            }
            return try adapter.map { try AdapterSpec.parse($0, option: "--adapter") }
        }

        /// How the prompt file's header names the target's adapters.
        var adapterDescription: String { adapter.joined(separator: " + ") }

        /// The concept file, the model with the adapter merged into its UNet (the same
        /// function with no gradients of its own: only the attack's input is optimized),
        /// and the pairs.
        func load() throws -> (ConceptFile, StableDiffusion, PairData) {
            let conceptFile = try conceptOption.load()
            let pairsDirectory = pairs ?? "pairs/\(conceptFile.name)"
            try PairData.checkMadeFor(conceptFile.name, directory: pairsDirectory)
            let diffusion = try StableDiffusion.load(directory: try modelOption.directory())
            try LoRAFile.load(adapters(), into: diffusion.unet, textEncoder: diffusion.textEncoder)
                .merge(into: diffusion.unet)
            return (conceptFile, diffusion, try PairData(directory: pairsDirectory))
        }
    }

    /// `duo attack ring-a-bell`.
    struct RingABellCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: GeneratedAttackSet.ringABell,
            abstract:
                "Ring-A-Bell (Tsai et al., ICLR 2024): concept prompts found from the text encoder alone.",
            discussion: """
                The concept direction is the mean difference of text-encoder embeddings of \
                the concept file's unsafe prompts and their safe counterparts; for each of \
                --count unsafe prompts, a genetic algorithm over --length tokens minimizes \
                the distance to the prompt's embedding plus eta times the direction, as the \
                authors' notebook runs it. It attacks the text encoder only: the prompts \
                transfer to every unlearned UNet of the model. The reference draws any token \
                id and writes the decoded text, which may tokenize to other ids (the file's \
                header counts them); the embedded model's duo_defaults.json instead searches \
                readable whole words without the concept's words and synonyms \
                (--token-space words) for 300 generations.
                """)

        @OptionGroup var conceptOption: ConceptOption

        @OptionGroup var modelOption: ModelOption

        @Option(help: "Tokens per prompt (Ring-A-Bell's K).")
        var length = RingABell.Settings().length

        @Option(help: "Weight of the concept direction (Ring-A-Bell's eta).")
        var eta = RingABell.Settings().eta

        @Option(help: "Population size (Ring-A-Bell's 200).")
        var population = RingABell.Settings().population

        @Option(
            help:
                "Generations (default: the model folder's duo_defaults.json, else 3000, Ring-A-Bell's)."
        )
        var generations: Int?

        @Option(
            name: .customLong("token-space"),
            help:
                "Tokens the search draws: all (every id but 0 and the special ones, Ring-A-Bell's) or words (whole words that tokenize back, the concept's words and synonyms left out) (default: the model folder's duo_defaults.json, else all)."
        )
        var tokenSpace: AttackTokenSpace?

        @Option(
            help:
                "Prompts to attack, a prompt set (text, or CSV as I2P's; the first --count rows; default: the concept's unsafe prompts)."
        )
        var targets: String?

        @Option(
            help:
                "The concept vector's prompt pairs: a CSV with columns with_concept and without_concept (default: the concept file's pairs)."
        )
        var pairPrompts: String?

        @OptionGroup var attackSet: AttackSetOptions

        func validate() throws {
            let count = attackSet.count
            guard length >= 1, generations ?? 1 >= 1, count >= 1 else {
                throw UsageError("--length and --generations and --count must be at least 1")
            }
            // Each generation scores every member: past this a run would not end.
            guard (4...100_000).contains(population) else {
                throw UsageError("--population must be from 4 to 100000, got \(population)")
            }
            try OptionCheck.finite(eta, "--eta")
        }

        func run() throws {
            let (count, seed) = (attackSet.count, attackSet.seed)
            let conceptFile = try conceptOption.load()
            let destination = try attackSet.destination(
                set: GeneratedAttackSet.ringABell, concept: conceptFile)
            // Bad files are found before the model is loaded.
            if let targets { _ = try PromptSetFile.read(targets) }
            if let pairPrompts { _ = try Self.readPairs(pairPrompts) }
            let modelDirectory = try modelOption.directory()
            let diffusion = try StableDiffusion.load(directory: modelDirectory)
            var settings = RingABell.Settings()
            let defaults = try ModelDefaults(directory: modelDirectory)
            let generations =
                self.generations ?? defaults.ringABellGenerations ?? settings.generations
            settings.length = length
            settings.eta = eta
            settings.population = population
            settings.generations = generations
            settings.tokenSpace = tokenSpace ?? defaults.ringABellTokenSpace ?? .all
            settings.seed = seed
            let pairs = try ConceptWorld(for: conceptFile).filler.pairPrompts(
                conceptFile, count: max(64, count), seed: seed)
            let vectorPairs = try pairPrompts.map(Self.readPairs) ?? pairs
            let targetPrompts =
                try targets.map { Array(try PromptSetFile.read($0).prefix(count)) }
                ?? pairs.prefix(count).map(\.unsafe)
            let attack = try RingABell(
                model: diffusion, withConcept: vectorPairs.map(\.unsafe),
                withoutConcept: vectorPairs.map(\.safe),
                forbidden: conceptFile.explicitWords + conceptFile.synonyms, settings: settings)
            let bar = attackSet.output.progress("ring-a-bell")
            var found: [RingABell.Found] = []
            for (i, target) in targetPrompts.enumerated() {
                let result = attack.attack(target, index: UInt64(i))
                found.append(result)
                bar?.update(
                    i + 1, of: targetPrompts.count,
                    detail: String(format: "distance %.2f", result.distance))
            }
            let header =
                "\(conceptFile.name): Ring-A-Bell prompts (duo attack ring-a-bell --concept \(conceptFile.name) "
                + "--length \(length) --eta \(eta) --population \(population) --generations \(generations) "
                + "--token-space \(settings.tokenSpace.rawValue) --count \(count) --seed \(seed)"
                + (targets.map { " --targets \($0)" } ?? "")
                + (pairPrompts.map { " --pair-prompts \($0)" } ?? "") + ")\n"
                + Self.retokenizedNote(found)
            try PromptSetFile.write(found.map(\.prompt), header: header, to: destination)
            print(destination)
        }

        /// How many of the prompts, as written (the decoded tokens), tokenize to other ids
        /// than were searched: the authors' prompts are written so too.
        static func retokenizedNote(_ found: [RingABell.Found]) -> String {
            let other = found.filter { !$0.tokenizesBack }.count
            return "\(other) of \(found.count) prompts tokenize to other ids than were searched "
                + "(each is the decoded text of its tokens, as Ring-A-Bell writes them)"
        }

        /// Prompt pairs with and without the concept from a CSV file (Ring-A-Bell's authors
        /// build the vector from curated pairs of their own).
        static func readPairs(_ path: String) throws -> [PromptPair] {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw UsageError("--pair-prompts \(path): no such file, or not readable")
            }
            guard let text = String(data: data, encoding: .utf8) else {
                throw UsageError("--pair-prompts \(path): not UTF-8 text")
            }
            let table = try CSVTable(parsing: text, path: path)
            guard let with = table.column("with_concept"),
                let without = table.column("without_concept")
            else {
                throw UsageError(
                    "\(path):1: expected the columns with_concept and without_concept, found \(table.columns.joined(separator: ", "))"
                )
            }
            let pairs = table.rows.map { PromptPair(unsafe: $0[with], safe: $0[without]) }
                .filter { !$0.unsafe.isEmpty && !$0.safe.isEmpty }
            guard !pairs.isEmpty else { throw UsageError("\(path): holds no prompt pairs") }
            return pairs
        }
    }
}

extension AttackTokenSpace: ExpressibleByArgument {}
