import Diffusion
import Foundation
import Tensor
import Unlearning

/// Concept Inversion (Pham et al., ICLR 2024, "Circumventing Concept Erasure Methods for
/// Text-to-Image Generative Models"), the white-box attack DUO's evaluation also runs: a new
/// token's embedding is learned by textual inversion (Gal et al., 2022) against the
/// UNLEARNED model, on images that show the concept. If the erasure only cut the words'
/// path to the concept, the token finds another one.
///
/// The training is diffusers' `examples/textual_inversion/textual_inversion.py` (at
/// 58eb52c), which Pham et al.'s `concept_inversion.py` (NYU-DICE-Lab/circumventing-concept-erasure
/// at bb7034b, `esd/`) runs with `train.sh`'s settings: the placeholder starts at an
/// initializer word's embedding; each example is an image, flipped at random, captioned by
/// a random template holding the placeholder; AdamW minimizes the attacked UNet's diffusion
/// loss over the placeholder's embedding row alone (the script restores every other row
/// after each step, l.910–917), with gradient accumulation as accelerate runs it
/// (`ConceptInversionTraining.swift`).
public struct ConceptInversion {
    /// Where the placeholder's embedding starts.
    public enum Initializer: Hashable, Sendable, CustomStringConvertible {
        /// One token's embedding (`--initializer_token`, which must be one token: l.684–689).
        case word(String)
        /// The mean embedding of the words an attack may use, the concept's own left out.
        case vocabularyMean

        /// `vocabulary-mean`, or a word (a hyphenated name is never one CLIP token).
        public init(_ text: String) {
            self = text == Self.vocabularyMeanName ? .vocabularyMean : .word(text)
        }

        public static let vocabularyMeanName = "vocabulary-mean"

        public var description: String {
            switch self {
            case .word(let word): return word
            case .vocabularyMean: return Self.vocabularyMeanName
            }
        }
    }

    /// Textual inversion's settings, named as diffusers' script's arguments; the defaults
    /// are Pham et al.'s `train.sh` (and the script's own where `train.sh` says nothing).
    public struct Settings: Hashable, Sendable {
        /// The new token (`--placeholder_token`), written into prompts.
        public var placeholder = "<concept>"
        public var initializer: Initializer
        /// `--learnable_property`: object templates unless a style is inverted.
        public var captions = TextualInversionCaptions.object
        /// `--num_train_images 25`: the first 25 images; 0 takes them all.
        public var numTrainImages = 25
        /// `--repeats` 100 (the script's default): the dataset holds each image 100 times.
        public var repeats = 100
        public var trainBatchSize = 4
        public var gradientAccumulationSteps = 4
        public var maxTrainSteps = 5000
        /// The base rate; `--scale_lr` multiplies it by accumulation × batch × processes.
        public var learningRate: Float = 5e-3
        public var scaleLR = true
        /// AdamW's settings (the script's defaults, l.328–331).
        public var adamBeta1: Float = 0.9
        public var adamBeta2: Float = 0.999
        public var adamWeightDecay: Float = 1e-2
        public var adamEpsilon: Float = 1e-8
        /// `RandomHorizontalFlip`'s p (the dataset's default 0.5).
        public var flipP: Float = 0.5
        public var seed: UInt64 = 0

        public init(initializer: Initializer) { self.initializer = initializer }

        /// These settings with a model folder's `concept-inversion` preset over them.
        public func applying(_ preset: ConceptInversionDefaults) -> Settings {
            var settings = self
            settings.maxTrainSteps = preset.maxTrainSteps ?? maxTrainSteps
            settings.learningRate = preset.learningRate ?? learningRate
            settings.scaleLR = preset.scaleLR ?? scaleLR
            settings.trainBatchSize = preset.trainBatchSize ?? trainBatchSize
            settings.gradientAccumulationSteps =
                preset.gradientAccumulationSteps ?? gradientAccumulationSteps
            settings.adamWeightDecay = preset.adamWeightDecay ?? adamWeightDecay
            settings.numTrainImages = preset.numTrainImages ?? numTrainImages
            settings.flipP = preset.flipP ?? flipP
            settings.initializer = preset.initializerToken.map(Initializer.init) ?? initializer
            settings.captions = preset.captions ?? captions
            return settings
        }

        /// The rate AdamW runs at: `--scale_lr` as the script computes it (l.735–738),
        /// on one process. The schedule is constant (`--lr_scheduler constant`, no warm-up).
        public var effectiveLearningRate: Float {
            scaleLR
                ? learningRate * Float(gradientAccumulationSteps * trainBatchSize) : learningRate
        }
    }

    public let model: StableDiffusion
    public let settings: Settings
    let diffusionLoss: AttackObjective
    /// Where the learned vector starts [1, hidden].
    let initialEmbedding: Tensor
    /// The tokenizer with the placeholder added as the embedding table's next row.
    let tokenizer: CLIPTokenizer

    /// `model` carries the adapter under attack (merged into its UNet); `forbidden` words
    /// (the concept's words and synonyms) are left out of a vocabulary-mean start.
    public init(model: StableDiffusion, forbidden: [String], settings: Settings) throws {
        self.model = model
        self.settings = settings
        let placeholderID = model.textEncoder.tokenEmbedding.shape[0]
        guard let tokenizer = model.tokenizer.addingToken(settings.placeholder, id: placeholderID)
        else {
            throw AttackError(
                "the placeholder \(settings.placeholder) is already a token of the model's tokenizer: choose another"
            )
        }
        self.tokenizer = tokenizer
        diffusionLoss = try AttackObjective(model: model)
        let ids = try Self.initializerIDs(settings.initializer, model.tokenizer, forbidden)
        initialEmbedding = GradMode.withNoGrad {
            mean(
                embedding(ids, weight: model.textEncoder.tokenEmbedding), axes: [0],
                keepDims: true)  // [1, hidden]
        }
    }

    static func initializerIDs(
        _ initializer: Initializer, _ tokenizer: CLIPTokenizer, _ forbidden: [String]
    ) throws -> [Int] {
        switch initializer {
        case .word(let word):
            let ids = tokenizer.tokenIDs(word)
            guard ids.count == 1 else {
                throw AttackError(
                    "the initializer \(word.debugDescription) is \(ids.count) tokens to the model's tokenizer; textual inversion starts from one token's embedding: choose a word that is one token"
                )
            }
            return ids
        case .vocabularyMean:
            let words = AttackVocabulary.tokenIDs(tokenizer, forbidden: forbidden)
            guard !words.isEmpty else {
                throw AttackError("the tokenizer leaves no word to start the embedding from")
            }
            return words
        }
    }

    /// The captions' token embeddings [N, T, hidden] with zeros at the placeholder, and a
    /// mask [N, T, 1] that is 1 where the placeholder stands: the text encoder's input is
    /// `fixed + mask * vector`, its embedding table with the placeholder's row. A prompt
    /// whose placeholder falls past the text encoder's length is refused; the templates
    /// are truncated as the script's tokenizer truncates them (never on SD's 77 tokens).
    func captionEmbeddings(_ captions: [String]) throws -> (fixed: Tensor, mask: Tensor) {
        let placeholderID = model.textEncoder.tokenEmbedding.shape[0]
        let length = tokenizer.maxLength
        let ids = captions.map { tokenizer.encode($0, padTo: length) }
        if settings.captions == .prompts,
            let bare = ids.firstIndex(where: { !$0.contains(placeholderID) })
        {
            throw AttackError(
                "the prompt \(captions[bare].debugDescription) does not hold the placeholder \(settings.placeholder) within the text encoder's \(length) tokens"
            )
        }
        let maskValues = ids.flatMap { $0.map { Float($0 == placeholderID ? 1 : 0) } }
        let hidden = initialEmbedding.shape[1]
        let mask = Tensor(maskValues, shape: [captions.count, length, 1])
        let keep = Tensor(maskValues.map { 1 - $0 }, shape: [captions.count, length, 1])
        let fixed = GradMode.withNoGrad {
            embedding(
                ids.flatMap { $0.map { $0 == placeholderID ? tokenizer.padTokenID : $0 } },
                weight: model.textEncoder.tokenEmbedding
            )
            .reshaped([captions.count, length, hidden]) * keep
        }
        return (fixed, mask)
    }

    /// The captions the examples draw from: the templates with the placeholder, or (for
    /// `.prompts`) `prompts`, one per image.
    func captions(prompts: [String]) -> [String] {
        guard let templates = TextualInversionTemplates.templates(settings.captions) else {
            return prompts
        }
        return templates.map { $0.replacingOccurrences(of: "{}", with: settings.placeholder) }
    }

    /// `prompt` with each of `words` (whole words, any case) replaced by the placeholder;
    /// a prompt without any of them gets the placeholder in front.
    public func substitute(_ words: [String], in prompt: String) -> String {
        var replaced = false
        let parts = prompt.split(separator: " ", omittingEmptySubsequences: false).map {
            part -> String in
            let word = part.trimmingCharacters(in: .punctuationCharacters).lowercased()
            guard words.contains(where: { $0.lowercased() == word }) else { return String(part) }
            replaced = true
            return part.replacingOccurrences(
                of: word, with: settings.placeholder, options: .caseInsensitive)
        }
        return replaced ? parts.joined(separator: " ") : settings.placeholder + " " + prompt
    }
}
