import Tensor

/// The settings of transformers' CLIPVisionConfig that the model uses.
public struct CLIPVisionConfig: Equatable, Sendable {
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layers: Int
    public var heads: Int
    /// The side of the square input, in pixels.
    public var imageSize: Int
    /// The side of a square patch: one token per patch.
    public var patchSize: Int
    public var channels: Int
    public var activation: CLIPTextConfig.Activation
    public var layerNormEps: Float

    public init(
        hiddenSize: Int, intermediateSize: Int, layers: Int, heads: Int, imageSize: Int,
        patchSize: Int, channels: Int = 3, activation: CLIPTextConfig.Activation = .quickGELU,
        layerNormEps: Float = 1e-5
    ) {
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.layers = layers
        self.heads = heads
        self.imageSize = imageSize
        self.patchSize = patchSize
        self.channels = channels
        self.activation = activation
        self.layerNormEps = layerNormEps
    }

    /// Reads a vision config (`vision_config` of a CLIP folder's config.json), with
    /// transformers' defaults for the keys it may leave out.
    public init(file config: ConfigFile) throws {
        let name = try config.string("hidden_act", default: "quick_gelu")
        guard let activation = CLIPTextConfig.Activation(rawValue: name) else {
            throw ModelError(
                file: config.path, key: "hidden_act",
                "expected quick_gelu or gelu, found \(name)")
        }
        self.init(
            hiddenSize: try config.size("hidden_size"),
            intermediateSize: try config.size("intermediate_size"),
            layers: try config.size("num_hidden_layers", limit: 256),
            heads: try config.size("num_attention_heads"),
            imageSize: try config.size("image_size", default: 224, limit: 1 << 12),
            patchSize: try config.size("patch_size", default: 32, limit: 1 << 12),
            channels: try config.size("num_channels", default: 3), activation: activation,
            layerNormEps: try config.float("layer_norm_eps", default: 1e-5))
        guard hiddenSize % heads == 0 else {
            throw ModelError(
                file: config.path, key: "num_attention_heads",
                "\(heads) heads do not divide hidden_size \(hiddenSize)")
        }
        guard patchSize > 0, imageSize % patchSize == 0 else {
            throw ModelError(
                file: config.path, key: "patch_size",
                "expected a divisor of image_size \(imageSize), found \(patchSize)")
        }
    }

    /// Patches per side.
    public var grid: Int { imageSize / patchSize }
}

/// transformers' CLIPVisionTransformer (Radford et al. 2021; a ViT, Dosovitskiy et al.
/// 2021): the image cut into patches by a strided convolution, a class token in front,
/// position embeddings, a layer norm before the encoder (`pre_layrnorm`, spelled as in the
/// checkpoints), pre-norm layers attending over every token, and `post_layernorm` on the
/// class token, whose output is the pooled image representation.
public final class CLIPVisionModel: Layer {
    public let config: CLIPVisionConfig
    /// [hidden]: the class token's input.
    public let classEmbedding: Tensor
    /// patch → hidden, kernel and stride the patch size, no bias.
    public let patchEmbedding: Conv2d
    /// [grid² + 1, hidden]: the class token's position first.
    public let positionEmbedding: Tensor
    public let preLayerNorm: LayerNorm
    public let layers: [CLIPEncoderLayer]
    public let postLayerNorm: LayerNorm

    /// Random initialization as transformers' CLIP (zeros with a nil key, for loading).
    public init(config c: CLIPVisionConfig, key: RandomKey?) {
        let keys = key.split(c.layers + 3)
        config = c
        classEmbedding = initialNormal(
            [c.hiddenSize], std: 1 / Float(c.hiddenSize).squareRoot(), key: keys[0])
        patchEmbedding = Conv2d(
            c.channels, c.hiddenSize, kernel: c.patchSize, stride: c.patchSize, bias: false,
            key: keys[1])
        positionEmbedding = initialNormal(
            [c.grid * c.grid + 1, c.hiddenSize], std: 0.02, key: keys[2])
        preLayerNorm = LayerNorm(c.hiddenSize, eps: c.layerNormEps)
        layers = (0..<c.layers).map {
            CLIPEncoderLayer(
                hiddenSize: c.hiddenSize, intermediateSize: c.intermediateSize, heads: c.heads,
                activation: c.activation, layerNormEps: c.layerNormEps, causal: false,
                key: keys[$0 + 3])
        }
        postLayerNorm = LayerNorm(c.hiddenSize, eps: c.layerNormEps)
    }

    public var namedParameters: [(String, Tensor)] {
        [("embeddings.class_embedding", classEmbedding)]
            + scoped("embeddings.patch_embedding", patchEmbedding)
            + [("embeddings.position_embedding.weight", positionEmbedding)]
            + scoped("pre_layrnorm", preLayerNorm) + scoped("encoder.layers", layers)
            + scoped("post_layernorm", postLayerNorm)
    }

    /// pixelValues: [B, channels, imageSize, imageSize] -> pooled [B, hidden]
    public func callAsFunction(_ pixelValues: Tensor) -> Tensor {
        let c = config
        precondition(
            pixelValues.shape.count == 4
                && Array(pixelValues.shape.dropFirst()) == [c.channels, c.imageSize, c.imageSize],
            "CLIP vision input \(pixelValues.shape), expected [B, \(c.channels), \(c.imageSize), \(c.imageSize)]"
        )
        let batch = pixelValues.shape[0]
        let tokens = c.grid * c.grid
        // embeddings: the class token, then the patches in row-major order
        let patches = patchEmbedding(pixelValues).reshaped([batch, c.hiddenSize, tokens])
            .transposed(1, 2)
        let classToken = classEmbedding.reshaped([1, 1, c.hiddenSize])
        var x = concat(Array(repeating: classToken, count: batch), axis: 0)
        x = concat([x, patches], axis: 1) + positionEmbedding
        // encoder
        x = preLayerNorm(x)
        for layer in layers { x = layer(x) }
        // pooled: the class token
        let pooled = split(x, sizes: [1, tokens], axis: 1)[0].reshaped([batch, c.hiddenSize])
        return postLayerNorm(pooled)
    }
}
