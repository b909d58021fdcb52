import Concepts
import ArgumentParser
import Diffusion
import Evaluation
import Foundation
import Unlearning
import World

extension Duo {
    /// `duo attack unlearndiff`.
    struct UnlearnDiffCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: GeneratedAttackSet.unlearnDiff,
            abstract:
                "UnlearnDiffAtk (Zhang et al., ECCV 2024): a white-box prefix attack on an unlearned model.",
            discussion: """
                For each of --count pairs, --prefix tokens (a softmax over the vocabulary, \
                the concept's words and synonyms excluded) are optimized with Adam so that \
                the model with --adapter, prompted with prefix + the pair's unsafe prompt, \
                denoises the pair's unsafe image well; the prefix is then made discrete. \
                Writes one prompt per line: a prompt set for duo eval (name it under the \
                concept file's [attacks]). The prompts are made against one adapter.
                """)

        @OptionGroup var target: WhiteBoxTarget

        @Option(help: "Prefix tokens (UnlearnDiffAtk's 5).")
        var prefix = UnlearnDiffAttack.Settings().prefixLength

        @OptionGroup var optimizer: OptimizerOptions<UnlearnDiffDefaults>

        @Option(help: "Noise draws (timestep and noise) averaged per step.")
        var draws = UnlearnDiffAttack.Settings().draws

        @OptionGroup var attackSet: AttackSetOptions

        func validate() throws {
            let count = attackSet.count
            guard prefix >= 1, draws >= 1, count >= 1 else {
                throw UsageError("--prefix, --draws and --count must be at least 1")
            }
        }

        func run() throws {
            let (count, seed) = (attackSet.count, attackSet.seed)
            let (conceptFile, diffusion, pairData) = try target.load()
            let destination = try attackSet.destination(
                set: GeneratedAttackSet.unlearnDiff, concept: conceptFile)
            guard count <= pairData.count else {
                throw UsageError("--count \(count): the pairs folder holds \(pairData.count) pairs")
            }
            var settings = UnlearnDiffAttack.Settings()
            settings.prefixLength = prefix
            let (steps, learningRate) = (optimizer.steps, optimizer.learningRate)
            settings.steps = steps
            settings.learningRate = learningRate
            settings.draws = draws
            settings.seed = seed
            let attack = try UnlearnDiffAttack(
                model: diffusion, forbidden: conceptFile.explicitWords + conceptFile.synonyms,
                settings: settings)
            let bar = attackSet.output.progress("unlearndiff")
            var found: [String] = []
            for i in 0..<count {
                let result = attack.attack(
                    image: diffusion.modelSpace(pairData.unsafe.slice(batch: i)),
                    prompt: pairData.unsafePrompts[i], index: UInt64(i))
                found.append(result.prompt)
                bar?.update(i + 1, of: count, detail: String(format: "loss %.4f", result.loss))
            }
            try PromptSetFile.write(
                found,
                header:
                    "\(conceptFile.name): UnlearnDiffAtk prompts against \(target.adapterDescription) (duo attack unlearndiff "
                    + "--concept \(conceptFile.name) --prefix \(prefix) --steps \(steps) --lr \(learningRate) "
                    + "--draws \(draws) --count \(count) --seed \(seed))",
                to: destination)
            print(destination)
        }
    }
}

/// UnlearnDiffAtk's optimizer defaults (`UnlearnDiffAttack.Settings`).
enum UnlearnDiffDefaults: OptimizerDefaults {
    static let steps = UnlearnDiffAttack.Settings().steps
    static let stepsHelp = "Optimization steps per prompt (UnlearnDiffAtk's 40)."
    static let learningRate = UnlearnDiffAttack.Settings().learningRate
    static let learningRateHelp = "Adam's learning rate on the prefix logits."
}
