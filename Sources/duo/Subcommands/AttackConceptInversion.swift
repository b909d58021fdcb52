import Concepts
import ArgumentParser
import Diffusion
import Evaluation
import Foundation
import Unlearning
import World

extension Duo {
    /// `duo attack concept-inversion`.
    struct ConceptInversionCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: GeneratedAttackSet.conceptInversion,
            abstract:
                "Concept Inversion (Pham et al., ICLR 2024): a token learned against an unlearned model.",
            discussion: """
                Learns one new token's embedding by textual inversion against the model with \
                --adapter, on the pairs' unsafe images, prompted with their unsafe prompts \
                where the token stands for the concept's words and synonyms. Writes --count \
                prompts of the concept's unsafe templates with the token in place of the \
                concept's words (a prompt set for duo eval, to name under the concept \
                file's [attacks]) and, beside them, the embedding (.safetensors, diffusers' \
                textual-inversion format), which duo eval loads with the set.
                """)

        @OptionGroup var target: WhiteBoxTarget

        @Option(help: "The new token (default: <NAME>).")
        var token: String?

        @OptionGroup var optimizer: OptimizerOptions<ConceptInversionDefaults>

        @Option(help: "Images per step.")
        var batchSize = ConceptInversion.Settings().batchSize

        @OptionGroup var attackSet: AttackSetOptions

        func validate() throws {
            let count = attackSet.count
            let out = attackSet.out
            guard batchSize >= 1, count >= 1 else {
                throw UsageError("--batch-size and --count must be at least 1")
            }
            if let token,
                token.isEmpty || token.contains(where: \.isWhitespace) || token.hasPrefix("#")
            {
                throw UsageError(
                    "--token must be one word without spaces or a leading #, got \(token.debugDescription)"
                )
            }
            if let out, out.hasSuffix(".safetensors") {
                throw UsageError(
                    "--out \(out): the prompt file; the token's .safetensors is written beside it")
            }
        }

        func run() throws {
            let (count, seed) = (attackSet.count, attackSet.seed)
            let (conceptFile, diffusion, pairData) = try target.load()
            let destination = try attackSet.destination(
                set: GeneratedAttackSet.conceptInversion, concept: conceptFile)
            var settings = ConceptInversion.Settings()
            // CLIP's tokenizer lower-cases prompts, and the token with them.
            settings.placeholder = (token ?? "<\(conceptFile.name)>").lowercased()
            let (steps, learningRate) = (optimizer.steps, optimizer.learningRate)
            settings.steps = steps
            settings.learningRate = learningRate
            settings.batchSize = batchSize
            settings.seed = seed
            let words = conceptFile.explicitWords + conceptFile.synonyms
            let inversion = try ConceptInversion(
                model: diffusion, forbidden: words, settings: settings)
            let bar = attackSet.output.progress("concept inversion")
            let vector = try inversion.learn(
                images: diffusion.modelSpace(pairData.unsafe),
                prompts: pairData.unsafePrompts.map { inversion.substitute(words, in: $0) }
            ) { step, loss in
                bar?.update(step, of: steps, detail: String(format: "loss %.4f", loss))
            }
            guard vector.scalars.allSatisfy(\.isFinite) else {
                throw UsageError(
                    "concept inversion diverged: the learned embedding holds NaN or infinity (lower --lr, now \(learningRate))"
                )
            }
            // Other draws than any pairs folder's: the seed with the attack's own salt.
            let prompts = try ConceptWorld(for: conceptFile).filler.pairPrompts(
                conceptFile, count: count, seed: seed ^ 0x4349_4E56_5052_4F4D  // "CINVPROM"
            ).map { inversion.substitute(words, in: $0.unsafe) }
            try PromptSetFile.check(prompts, for: destination)
            let header =
                "\(conceptFile.name): Concept Inversion prompts against \(target.adapterDescription) (duo attack concept-inversion "
                + "--concept \(conceptFile.name) --token \(settings.placeholder) --steps \(steps) --lr \(learningRate) "
                + "--batch-size \(batchSize) --count \(count) --seed \(seed)); the token's embedding: "
                + (GeneratedAttackSet.embeddingsPath(forSet: destination) as NSString)
                .lastPathComponent
            try TextualInversionFile.save(
                token: settings.placeholder, embedding: vector,
                to: GeneratedAttackSet.embeddingsPath(forSet: destination),
                metadata: [
                    "concept": conceptFile.name, "adapter": target.adapterDescription,
                    "steps": "\(steps)",
                ])
            try PromptSetFile.write(prompts, header: header, to: destination)
            print(destination)
        }
    }
}

/// Concept inversion's optimizer defaults (`ConceptInversion.Settings`).
enum ConceptInversionDefaults: OptimizerDefaults {
    static let steps = ConceptInversion.Settings().steps
    static let stepsHelp = "Optimization steps."
    static let learningRate = ConceptInversion.Settings().learningRate
    static let learningRateHelp = "Adam's learning rate on the embedding."
}
