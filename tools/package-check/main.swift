// A program outside duo that uses its library products, as a dependent package would: it
// reads a concept file of plain prompts, writes its prompt pairs, and prints the settings
// duo unlearn would train with for a model folder without duo defaults.
import Concepts
import Evaluation
import Foundation
import Unlearning

let concept = try ConceptFile(
    parsing: """
        name = "example"
        description = "a concept file of plain prompts"
        kind = "object"
        [words]
        explicit = ["example"]
        synonyms = ["sample"]
        implicit = ["specimen"]
        [prompts]
        unsafe = ["a photo of an example"]
        safe = ["a photo"]
        """, path: "example.toml")
let pairs = try PlainPrompts().pairPrompts(concept, count: 2, seed: 0)
let settings = try UnlearningSettings.merged(
    model: ModelDefaults(), concept: concept.unlearning, options: UnlearningOptions())
print("pairs: \(pairs.map(\.unsafe)); beta \(settings.beta), steps \(settings.steps)")
print("metrics: \(PixelSimilarity().columns.map(\.key))")
