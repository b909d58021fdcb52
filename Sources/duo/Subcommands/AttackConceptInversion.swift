import ArgumentParser
import Concepts
import Diffusion
import Evaluation
import Formats
import Foundation
import Tensor
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
                --adapter, as Pham et al. run diffusers' textual_inversion.py: on the first \
                --images unsafe images of the pairs (the original model's images of the \
                concept), flipped at random, captioned by object templates ("a photo of a \
                <token>"), from the --initializer word's embedding, with AdamW at 5e-3 scaled \
                by batch 4 x accumulation 4 for 5000 steps (in fp32; Pham et al. train in \
                fp16 mixed precision). Writes --count prompts of the \
                concept's unsafe templates with the token in place of the concept's words (a \
                prompt set for duo eval, to name under the concept file's [attacks]) and, \
                beside them, the embedding (.safetensors, diffusers' textual-inversion \
                format), which duo eval loads with the set. Ctrl-C checkpoints and exits; \
                --resume continues. The embedded model's duo_defaults.json changes the \
                reference for its world: 1000 steps at 2e-2 unscaled, no accumulation, no \
                weight decay or flips, every image, each captioned by its own pair prompt, \
                from the mean word embedding.
                """)

        @OptionGroup var target: WhiteBoxTarget

        @Option(help: "The new token (default: <NAME>).")
        var token: String?

        @OptionGroup var training: InversionOptions

        @Option(help: "Steps between checkpoints.")
        var checkpointEvery = 100

        @Flag(help: "Continue from the checkpoint beside the output.")
        var resume = false

        @OptionGroup var attackSet: AttackSetOptions

        func validate() throws {
            guard attackSet.count >= 1, checkpointEvery >= 1 else {
                throw UsageError("--count and --checkpoint-every must be at least 1")
            }
            if let token,
                token.isEmpty || token.contains(where: \.isWhitespace) || token.hasPrefix("#")
            {
                throw UsageError(
                    "--token must be one word without spaces or a leading #, got \(token.debugDescription)"
                )
            }
            if let out = attackSet.out, out.hasSuffix(".safetensors") {
                throw UsageError(
                    "--out \(out): the prompt file; the token's .safetensors is written beside it")
            }
        }

        func run() throws {
            let (conceptFile, diffusion, pairData) = try target.load()
            let destination = try attackSet.destination(
                set: GeneratedAttackSet.conceptInversion, concept: conceptFile)
            try Self.checkReplaceable(
                GeneratedAttackSet.embeddingsPath(forSet: destination), marks: ["concept", "steps"])
            try Self.checkReplaceable(
                Self.checkpointPath(forSet: destination), marks: ["settings", "token"])
            let modelDirectory = try target.modelOption.directory()
            var settings = try training.settings(
                concept: conceptFile, defaults: ModelDefaults(directory: modelDirectory))
            // CLIP's tokenizer lower-cases prompts, and the token with them.
            settings.placeholder = (token ?? "<\(conceptFile.name)>").lowercased()
            settings.seed = attackSet.seed
            let words = conceptFile.explicitWords + conceptFile.synonyms
            let inversion = try ConceptInversion(
                model: diffusion, forbidden: words, settings: settings)
            let checkpointing = ConceptInversion.Checkpointing(
                path: Self.checkpointPath(forSet: destination), every: checkpointEvery,
                metadata: try metadata(settings, modelDirectory: modelDirectory, pairs: pairData),
                resume: resume)
            let vector = try learn(
                inversion, pairs: pairData,
                prompts: pairData.unsafePrompts.map { inversion.substitute(words, in: $0) },
                checkpointing: checkpointing)
            try write(vector, inversion: inversion, concept: conceptFile, to: destination)
            try? FileManager.default.removeItem(atPath: checkpointing.path)
            print(destination)
        }

        /// The learned embedding, or exit 130 after a checkpoint when Ctrl-C stopped it.
        func learn(
            _ inversion: ConceptInversion, pairs: PairData, prompts: [String],
            checkpointing: ConceptInversion.Checkpointing
        ) throws -> Tensor {
            let settings = inversion.settings
            let steps = settings.maxTrainSteps
            RunTimeNote.announce(
                "duo attack concept-inversion: \(steps) steps", model: inversion.model,
                quiet: attackSet.output.quiet
            ) {
                RunEstimate.trainingPasses(
                    steps: steps,
                    rows: settings.trainBatchSize * settings.gradientAccumulationSteps,
                    withReference: false)
            }
            Interruption.install()
            let bar = attackSet.output.progress("concept inversion")
            var first: Int?
            var draws = SeededInversionDraws(seed: settings.seed)
            let vector = try inversion.learn(
                images: pairs.unsafe, prompts: prompts, draws: &draws, checkpointing: checkpointing
            ) { step in
                let start = first ?? step.step - 1
                first = start
                bar?.update(
                    step.step - start, of: steps - start,
                    detail: String(format: "step %d/%d  loss %.4f", step.step, steps, step.loss))
                return !Interruption.requested
            }
            guard let vector else {
                bar?.note("stopped; checkpoint written: continue with --resume")
                throw ExitCode(130)
            }
            guard vector.scalars.allSatisfy(\.isFinite) else {
                throw UsageError(
                    "concept inversion diverged: the learned embedding holds NaN or infinity (lower --lr, now \(settings.learningRate))"
                )
            }
            return vector
        }

        /// The prompt set (concept prompts with the token) and, beside it, the embedding.
        func write(
            _ vector: Tensor, inversion: ConceptInversion, concept: ConceptFile,
            to destination: String
        ) throws {
            let words = concept.explicitWords + concept.synonyms
            let seed = attackSet.seed
            // Other draws than any pairs folder's: the seed with the attack's own salt.
            let prompts = try ConceptWorld(for: concept).filler.pairPrompts(
                concept, count: attackSet.count, seed: seed ^ 0x4349_4E56_5052_4F4D  // "CINVPROM"
            ).map { inversion.substitute(words, in: $0.unsafe) }
            try PromptSetFile.check(prompts, for: destination)
            let settings = inversion.settings
            let embeddings = GeneratedAttackSet.embeddingsPath(forSet: destination)
            let header =
                "\(concept.name): Concept Inversion prompts against \(target.adapterDescription) (duo attack concept-inversion "
                + "--concept \(concept.name) --token \(settings.placeholder) "
                + InversionOptions.describe(settings)
                + " --count \(attackSet.count) --seed \(seed)); the token's embedding: "
                + (embeddings as NSString).lastPathComponent
            try TextualInversionFile.save(
                token: settings.placeholder, embedding: vector, to: embeddings,
                metadata: [
                    "concept": concept.name, "adapter": target.adapterDescription,
                    "steps": "\(settings.maxTrainSteps)",
                ])
            try PromptSetFile.write(prompts, header: header, to: destination)
        }

        /// What a resumed run must share with the checkpoint's.
        func metadata(
            _ settings: ConceptInversion.Settings, modelDirectory: String, pairs: PairData
        ) throws -> [String: String] {
            [
                "settings": InversionOptions.describe(settings),
                "token": settings.placeholder, "seed": "\(settings.seed)",
                "adapter": target.adapterDescription,
                "model_sha256": try StableDiffusion.weightsDigest(directory: modelDirectory),
                "pairs_manifest_sha256": pairs.manifestDigest,
            ]
        }

        /// Refuses a file at `path` (written beside the prompt file) that this command did not
        /// write: a safetensors file whose metadata lacks the `marks` it writes.
        static func checkReplaceable(_ path: String, marks: [String]) throws {
            guard FileManager.default.fileExists(atPath: path) else { return }
            let metadata = (try? SafeTensorsReader(path: path).metadata) ?? [:]
            guard marks.allSatisfy({ metadata[$0] != nil }) else {
                throw UsageError(
                    "\(path): exists and was not written by duo attack concept-inversion; remove it or give another --out"
                )
            }
        }

        /// The run's checkpoint, beside the prompt file.
        static func checkpointPath(forSet path: String) -> String {
            (path as NSString).deletingPathExtension + ".checkpoint.safetensors"
        }
    }
}
