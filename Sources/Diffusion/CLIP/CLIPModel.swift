import Foundation
import Tensor

/// The settings of transformers' CLIPConfig: both towers and the shared embedding space.
public struct CLIPConfig: Equatable, Sendable {
    public var text: CLIPTextConfig
    public var vision: CLIPVisionConfig
    /// The width of the shared image-text embedding space.
    public var projectionDim: Int
    /// The text tower's `eos_token_id`: its hidden state at that token is the pooled output.
    public var eosTokenID: Int

    public init(text: CLIPTextConfig, vision: CLIPVisionConfig, projectionDim: Int, eosTokenID: Int)
    {
        self.text = text
        self.vision = vision
        self.projectionDim = projectionDim
        self.eosTokenID = eosTokenID
    }

    /// Reads a CLIP folder's config.json (`text_config`, `vision_config`, `projection_dim`);
    /// a problem inside a section names its key as `text_config.hidden_size`.
    public init(file config: ConfigFile) throws {
        let textSection = try Self.section("text_config", of: config)
        let visionSection = try Self.section("vision_config", of: config)
        self.init(
            text: try Self.reading("text_config") { try CLIPTextConfig(file: textSection) },
            vision: try Self.reading("vision_config") {
                try CLIPVisionConfig(file: visionSection)
            },
            projectionDim: try config.int("projection_dim", default: 512),
            // transformers' CLIPTextConfig default (CLIP's <|endoftext|>).
            eosTokenID: try Self.reading("text_config") {
                try textSection.int("eos_token_id", default: 49407)
            })
    }

    /// The object under `key`, as a config of its own (same file).
    static func section(_ key: String, of config: ConfigFile) throws -> ConfigFile {
        guard case .object(let members)? = config.values[key] else {
            throw ModelError(
                file: config.path, key: key,
                "missing or not an object (expected a CLIPModel config)")
        }
        return ConfigFile(
            path: config.path, values: Dictionary(members, uniquingKeysWith: { first, _ in first }))
    }

    /// Runs `body`, prefixing the key of a `ModelError` it throws with `section.`.
    static func reading<T>(_ section: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let error as ModelError {
            throw ModelError(
                file: error.file, key: error.key.map { "\(section).\($0)" }, error.message)
        }
    }
}

/// transformers' CLIPModel (Radford et al. 2021): a text tower and a vision tower, each
/// with a linear projection (no bias) into one embedding space, and the learned
/// temperature `logit_scale` of their contrastive logits. Used to measure images (CLIP
/// score, CLIP-feature FID), so inference only.
public final class CLIPModel: Layer {
    public let config: CLIPConfig
    public let textModel: CLIPTextModel
    public let visionModel: CLIPVisionModel
    public let textProjection: Linear
    public let visualProjection: Linear
    /// []: log of the factor on the cosine similarities.
    public let logitScale: Tensor

    /// Random initialization (zeros with a nil key, for loading); logit_scale log(1/0.07)
    /// as transformers'.
    public init(config c: CLIPConfig, key: RandomKey?) {
        let keys = key.split(4)
        config = c
        textModel = CLIPTextModel(config: c.text, key: keys[0])
        visionModel = CLIPVisionModel(config: c.vision, key: keys[1])
        textProjection = Linear(c.text.hiddenSize, c.projectionDim, bias: false, key: keys[2])
        visualProjection = Linear(
            c.vision.hiddenSize, c.projectionDim, bias: false, key: keys[3])
        logitScale = Tensor([Float(log(1 / 0.07))], shape: [])
    }

    public var namedParameters: [(String, Tensor)] {
        scoped("text_model", textModel) + scoped("vision_model", visionModel)
            + scoped("text_projection", textProjection)
            + scoped("visual_projection", visualProjection) + [("logit_scale", logitScale)]
    }

    /// Loads `directory`: config.json and model.safetensors as `CLIPModel.save_pretrained`
    /// writes them.
    public static func load(directory: String) throws -> CLIPModel {
        try ComponentLoading.load(directory, weights: "model", alternatives: { _ in [] }) {
            CLIPModel(config: try CLIPConfig(file: $0), key: nil)
        }
    }

    /// pixelValues: [B, 3, S, S] (as `CLIPImageProcessor` makes them) -> [B, projection],
    /// not normalized (transformers' `get_image_features`).
    public func imageFeatures(_ pixelValues: Tensor) -> Tensor {
        visualProjection(visionModel(pixelValues))
    }

    /// tokenIDs: B sequences of one length, each holding eos -> [B, projection], not
    /// normalized (transformers' `get_text_features`). The text tower is causal, so what
    /// follows eos (padding) changes nothing.
    public func textFeatures(_ tokenIDs: [[Int]]) -> Tensor {
        let hidden = textModel(tokenIDs)
        let (length, width) = (hidden.shape[1], hidden.shape[2])
        let rows = tokenIDs.enumerated().map { $0.offset * length + pooledPosition($0.element) }
        let pooled = embedding(rows, weight: hidden.reshaped([tokenIDs.count * length, width]))
        return textProjection(pooled)
    }

    /// Where transformers' CLIPTextTransformer pools a sequence: the first eos; configs
    /// written before transformers fixed eos_token_id (they say 2) take the highest id,
    /// which is eos in CLIP's vocabulary. A sequence without eos pools its first token, as
    /// transformers' argmax over no match does.
    func pooledPosition(_ ids: [Int]) -> Int {
        if config.eosTokenID == 2 { return ids.max().flatMap { ids.firstIndex(of: $0) } ?? 0 }
        return ids.firstIndex(of: config.eosTokenID) ?? 0
    }

    /// imageFeatures [I, projection], textFeatures [T, projection] -> [I, T]: the cosine
    /// similarities times exp(logit_scale), as CLIPModel's `logits_per_image`.
    public func logitsPerImage(imageFeatures: Tensor, textFeatures: Tensor) -> Tensor {
        let images = Self.normalized(imageFeatures), texts = Self.normalized(textFeatures)
        return matmul(images, texts.transposed(0, 1)) * exp(logitScale.item)
    }

    /// Each row of x [N, D] divided by its L2 norm.
    public static func normalized(_ x: Tensor) -> Tensor {
        precondition(x.rank == 2, "rows to normalize: \(x.shape), expected [N, D]")
        let width = x.shape[1]
        var values = x.scalars
        for row in 0..<x.shape[0] {
            let range = row * width..<(row + 1) * width
            let norm = values[range].reduce(0) { $0 + $1 * $1 }.squareRoot()
            for i in range { values[i] /= norm }
        }
        return Tensor(values, shape: x.shape)
    }
}
