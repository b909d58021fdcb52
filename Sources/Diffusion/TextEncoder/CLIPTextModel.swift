import Tensor

/// The settings of transformers' CLIPTextConfig that the model uses.
public struct CLIPTextConfig: Equatable, Sendable {
    public enum Activation: String, Sendable { case quickGELU = "quick_gelu", gelu }

    public var vocabularySize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layers: Int
    public var heads: Int
    public var maxPositions: Int
    public var activation: Activation
    public var layerNormEps: Float

    public init(
        vocabularySize: Int, hiddenSize: Int, intermediateSize: Int, layers: Int, heads: Int,
        maxPositions: Int = 77, activation: Activation = .quickGELU, layerNormEps: Float = 1e-5
    ) {
        self.vocabularySize = vocabularySize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.layers = layers
        self.heads = heads
        self.maxPositions = maxPositions
        self.activation = activation
        self.layerNormEps = layerNormEps
    }

    /// Reads `text_encoder/config.json`.
    public init(file config: ConfigFile) throws {
        let name = try config.string("hidden_act", default: "quick_gelu")
        guard let activation = Activation(rawValue: name) else {
            throw ModelError(
                file: config.path, key: "hidden_act",
                "expected quick_gelu or gelu, found \(name)")
        }
        self.init(
            vocabularySize: try config.size("vocab_size", limit: 1 << 20),
            hiddenSize: try config.size("hidden_size"),
            intermediateSize: try config.size("intermediate_size"),
            layers: try config.size("num_hidden_layers", limit: 256),
            heads: try config.size("num_attention_heads"),
            maxPositions: try config.size("max_position_embeddings", default: 77),
            activation: activation, layerNormEps: try config.float("layer_norm_eps", default: 1e-5))
        guard layerNormEps > 0, layerNormEps.isFinite else {
            throw ModelError(
                file: config.path, key: "layer_norm_eps",
                "expected a positive number, found \(layerNormEps)")
        }
        guard hiddenSize % heads == 0 else {
            throw ModelError(
                file: config.path, key: "num_attention_heads",
                "\(heads) heads do not divide hidden_size \(hiddenSize)")
        }
    }
}

/// One pre-norm transformer layer of CLIP's encoders: self-attention (causal in the text
/// encoder, over all patches in the vision encoder), then an MLP, each residual.
public final class CLIPEncoderLayer: Layer {
    public let layerNorm1: LayerNorm
    public let qProj: Linear
    public let kProj: Linear
    public let vProj: Linear
    public let outProj: Linear
    public let layerNorm2: LayerNorm
    public let fc1: Linear
    public let fc2: Linear
    let heads: Int
    let activation: CLIPTextConfig.Activation
    let causal: Bool

    init(
        hiddenSize: Int, intermediateSize: Int, heads: Int,
        activation: CLIPTextConfig.Activation, layerNormEps: Float, causal: Bool,
        key: RandomKey?
    ) {
        let keys = key.split(6)
        self.heads = heads
        self.activation = activation
        self.causal = causal
        layerNorm1 = LayerNorm(hiddenSize, eps: layerNormEps)
        qProj = Linear(hiddenSize, hiddenSize, key: keys[0])
        kProj = Linear(hiddenSize, hiddenSize, key: keys[1])
        vProj = Linear(hiddenSize, hiddenSize, key: keys[2])
        outProj = Linear(hiddenSize, hiddenSize, key: keys[3])
        layerNorm2 = LayerNorm(hiddenSize, eps: layerNormEps)
        fc1 = Linear(hiddenSize, intermediateSize, key: keys[4])
        fc2 = Linear(intermediateSize, hiddenSize, key: keys[5])
    }

    /// A layer of the text encoder.
    convenience init(config c: CLIPTextConfig, key: RandomKey?) {
        self.init(
            hiddenSize: c.hiddenSize, intermediateSize: c.intermediateSize, heads: c.heads,
            activation: c.activation, layerNormEps: c.layerNormEps, causal: true, key: key)
    }

    public var namedParameters: [(String, Tensor)] {
        scoped("layer_norm1", layerNorm1) + scoped("self_attn.q_proj", qProj)
            + scoped("self_attn.k_proj", kProj) + scoped("self_attn.v_proj", vProj)
            + scoped("self_attn.out_proj", outProj) + scoped("layer_norm2", layerNorm2)
            + scoped("mlp.fc1", fc1) + scoped("mlp.fc2", fc2)
    }

    /// x: [B, T, hidden] -> same shape
    func callAsFunction(_ x: Tensor) -> Tensor {
        var x = x
        // self-attention
        let h = layerNorm1(x)
        let attended = scaledDotProductAttention(
            query: qProj(h), key: kProj(h), value: vProj(h), heads: heads, causal: causal)
        x = x + outProj(attended)
        // MLP
        let inner = fc1(layerNorm2(x))
        x = x + fc2(activation == .quickGELU ? quickGELU(inner) : gelu(inner))
        return x
    }
}

/// transformers' CLIPTextModel (Radford et al. 2021): token and position embeddings,
/// causal transformer layers, a final layer norm. Its last hidden state is what Stable
/// Diffusion conditions on.
public final class CLIPTextModel: Layer {
    public let config: CLIPTextConfig
    /// [vocabulary + added tokens, hidden].
    public private(set) var tokenEmbedding: Tensor
    public let positionEmbedding: Tensor
    public let layers: [CLIPEncoderLayer]
    public let finalLayerNorm: LayerNorm

    /// Random initialization as transformers' CLIP: N(0, 0.02) embeddings.
    public init(config c: CLIPTextConfig, key: RandomKey?) {
        let keys = key.split(c.layers + 2)
        config = c
        tokenEmbedding = initialNormal([c.vocabularySize, c.hiddenSize], std: 0.02, key: keys[0])
        positionEmbedding = initialNormal([c.maxPositions, c.hiddenSize], std: 0.01, key: keys[1])
        layers = (0..<c.layers).map { CLIPEncoderLayer(config: c, key: keys[$0 + 2]) }
        finalLayerNorm = LayerNorm(c.hiddenSize, eps: c.layerNormEps)
    }

    public var namedParameters: [(String, Tensor)] {
        [
            ("embeddings.token_embedding.weight", tokenEmbedding),
            ("embeddings.position_embedding.weight", positionEmbedding),
        ]
            + scoped("encoder.layers", layers) + scoped("final_layer_norm", finalLayerNorm)
    }

    /// Appends rows [n, hidden] to the token embeddings, for tokens added to the tokenizer
    /// (textual inversion) with ids from the current vocabulary size on.
    public func appendTokenEmbeddings(_ rows: Tensor) {
        precondition(
            rows.rank == 2 && rows.shape[1] == config.hiddenSize,
            "token embeddings \(rows.shape), expected [n, \(config.hiddenSize)]")
        tokenEmbedding = GradMode.withNoGrad { concat([tokenEmbedding, rows], axis: 0) }
    }

    /// Keeps the first `count` rows of the token embeddings: takes back rows that
    /// `appendTokenEmbeddings` added.
    func keepTokenEmbeddings(_ count: Int) {
        precondition(
            (config.vocabularySize...tokenEmbedding.shape[0]).contains(count),
            "keep \(count) token embeddings of \(tokenEmbedding.shape[0])")
        guard count < tokenEmbedding.shape[0] else { return }
        tokenEmbedding = GradMode.withNoGrad { tokenEmbedding.rows(0..<count) }
    }

    /// Checkpoints saved by transformers before v5 (SD 1.x among them) prefix every key
    /// with `text_model.`.
    static func legacyName(_ key: String) -> [String] { ["text_model." + key] }

    /// tokenIDs: B sequences of the same length T <= maxPositions -> [B, T, hidden]
    public func callAsFunction(_ tokenIDs: [[Int]]) -> Tensor {
        let length = tokenIDs[0].count
        precondition(
            tokenIDs.allSatisfy { $0.count == length } && length <= config.maxPositions,
            "text encoder input: \(tokenIDs.count) sequences, lengths must be equal and <= \(config.maxPositions)"
        )
        let tokens = embedding(tokenIDs.flatMap { $0 }, weight: tokenEmbedding)
            .reshaped([tokenIDs.count, length, config.hiddenSize])
        return self(tokenEmbeddings: tokens)
    }

    /// The same from token embeddings [B, T, hidden] instead of ids: attacks that optimize
    /// soft tokens (UnlearnDiffAtk's relaxed one-hot) differentiate through this.
    public func callAsFunction(tokenEmbeddings tokens: Tensor) -> Tensor {
        let length = tokens.shape[1]
        precondition(
            tokens.rank == 3 && tokens.shape[2] == config.hiddenSize
                && length <= config.maxPositions,
            "text encoder embeddings: \(tokens.shape), expected [B, <= \(config.maxPositions), \(config.hiddenSize)]"
        )
        let positions = embedding(Array(0..<length), weight: positionEmbedding)
        var x = tokens + positions
        for layer in layers { x = layer(x) }
        return finalLayerNorm(x)
    }
}
