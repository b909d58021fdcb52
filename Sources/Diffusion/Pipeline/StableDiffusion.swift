import Foundation
import Formats
import Tensor

/// A text-to-image model loaded from a diffusers folder: tokenizer, text encoder, UNet,
/// scheduler config, and a VAE when it works in latent space (a pixel-space model, like
/// the embedded default, has none).
public final class StableDiffusion {
    public let directory: String
    public private(set) var tokenizer: CLIPTokenizer
    public let textEncoder: CLIPTextModel
    public let unet: UNet2DConditionModel
    public let vae: AutoencoderKL?
    public let schedulerConfigPath: String
    /// The sampler the folder names (its scheduler's `_class_name`): DDPM for a folder
    /// that says DDPMScheduler (the embedded default), PNDM for PNDMScheduler (Stable
    /// Diffusion 1.x folders), DDIM for DDIMScheduler and for every class duo lacks (their
    /// configs describe the same betas, as diffusers' SD pipelines allow).
    public let defaultSchedulerKind: SchedulerKind

    public init(
        directory: String, tokenizer: CLIPTokenizer, textEncoder: CLIPTextModel,
        unet: UNet2DConditionModel, vae: AutoencoderKL?, schedulerConfigPath: String
    ) {
        self.directory = directory
        self.tokenizer = tokenizer
        self.textEncoder = textEncoder
        self.unet = unet
        self.vae = vae
        self.schedulerConfigPath = schedulerConfigPath
        let text =
            (try? Data(contentsOf: URL(fileURLWithPath: schedulerConfigPath))).map { Array($0) }
            ?? []
        let className = (try? JSONParser.parse(text))?["_class_name"]?.string
        defaultSchedulerKind = className.flatMap(SchedulerKind.init(rawValue:)) ?? .ddim
    }

    /// Loads the components of `directory`; a missing one fails naming its path.
    public static func load(directory: String) throws -> StableDiffusion {
        func path(_ component: String) throws -> String {
            let p = (directory as NSString).appendingPathComponent(component)
            guard FileManager.default.fileExists(atPath: p) else {
                throw ModelError(file: p, "missing (a model folder needs \(component))")
            }
            return p
        }
        // The components are found by their folders; an index that is there must still
        // be one (a damaged folder shows here first).
        let index = (directory as NSString).appendingPathComponent("model_index.json")
        if FileManager.default.fileExists(atPath: index) { _ = try ConfigFile(path: index) }
        let vaePath = (directory as NSString).appendingPathComponent("vae")
        let model = StableDiffusion(
            directory: directory,
            tokenizer: try CLIPTokenizer(directory: try path("tokenizer")),
            textEncoder: try CLIPTextModel.load(directory: try path("text_encoder")),
            unet: try UNet2DConditionModel.load(directory: try path("unet")),
            vae: FileManager.default.fileExists(atPath: vaePath)
                ? try AutoencoderKL.load(directory: vaePath) : nil,
            schedulerConfigPath: try path("scheduler/scheduler_config.json"))
        try model.checkComponentsFit()
        return model
    }

    /// The components of one folder must fit each other; a mismatch found here is an
    /// error naming the configs, where the first prompt would otherwise stop on a
    /// precondition deep in a layer.
    func checkComponentsFit() throws {
        let text = textEncoder.config
        let textConfig = directory + "/text_encoder/config.json"
        guard tokenizer.maxLength <= text.maxPositions else {
            throw ModelError(
                file: textConfig, key: "max_position_embeddings",
                "\(text.maxPositions) positions, but the tokenizer pads prompts to \(tokenizer.maxLength)"
            )
        }
        guard tokenizer.vocabularySize <= text.vocabularySize else {
            throw ModelError(
                file: textConfig, key: "vocab_size",
                "\(text.vocabularySize) embeddings, but the tokenizer has \(tokenizer.vocabularySize) ids"
            )
        }
        if let ids = tokenizer.idBounds, ids.lowerBound < 0 || ids.upperBound >= text.vocabularySize
        {
            throw ModelError(
                file: directory + "/tokenizer",
                "holds token ids \(ids.lowerBound) to \(ids.upperBound), but the text encoder has embeddings 0 to \(text.vocabularySize - 1) (its vocab_size)"
            )
        }
        let attends =
            unet.config.downBlocks.contains(.crossAttention)
            || unet.config.upBlocks.contains(.crossAttention)
            || unet.config.midBlock == .crossAttention
        guard !attends || unet.config.crossAttentionDim == text.hiddenSize else {
            throw ModelError(
                file: directory + "/unet/config.json", key: "cross_attention_dim",
                "\(unet.config.crossAttentionDim), but the text encoder's hidden size is \(text.hiddenSize)"
            )
        }
        if let vae, vae.config.latentChannels != unet.config.inChannels {
            throw ModelError(
                file: directory + "/vae/config.json", key: "latent_channels",
                "\(vae.config.latentChannels), but the UNet takes \(unet.config.inChannels) channels"
            )
        }
    }

    /// Adds learned tokens (textual inversion, as diffusers' `load_textual_inversion`):
    /// each token string gets a new id and its embedding [hidden] a row of the text
    /// encoder's table. A token the tokenizer already has, or a vector of another size, is
    /// refused naming `source` (the file the embeddings came from).
    public func addTokens(_ tokens: [(token: String, embedding: Tensor)], source: String) throws {
        let hidden = textEncoder.config.hiddenSize
        var extended = tokenizer
        for (i, (token, vector)) in tokens.enumerated() {  // all checked before the model changes
            guard vector.count == hidden else {
                throw ModelError(
                    file: source, key: token,
                    "embedding of \(vector.count) values, the text encoder's are \(hidden)")
            }
            guard
                let next = extended.addingToken(token, id: textEncoder.tokenEmbedding.shape[0] + i)
            else {
                throw ModelError(
                    file: source, key: token,
                    "the tokenizer already has this token (or it is empty)")
            }
            extended = next
        }
        tokenizer = extended
        if !tokens.isEmpty {
            textEncoder.appendTokenEmbeddings(
                concat(tokens.map { $0.embedding.reshaped([1, hidden]) }, axis: 0))
        }
    }

    /// Runs `body` with the tokens of the textual-inversion file at `path` added
    /// (`TextualInversionFile.load`), then takes them back: on every path out the tokenizer
    /// and the text encoder's table are as they were, so tokens learned against different
    /// models under one placeholder string never meet. nil: `body` alone.
    public func withTokens<T>(from path: String?, _ body: () throws -> T) throws -> T {
        guard let path else { return try body() }
        let (savedTokenizer, rows) = (tokenizer, textEncoder.tokenEmbedding.shape[0])
        defer {
            tokenizer = savedTokenizer
            textEncoder.keepTokenEmbeddings(rows)
        }
        try TextualInversionFile.load(path, into: self)
        return try body()
    }

    /// Images in [-1, 1] in the UNet's space: the pixels, or for a latent model the VAE
    /// posterior means × the scaling factor (what an attack denoises).
    public func modelSpace(_ images: Tensor) -> Tensor {
        guard let vae else { return images }
        return GradMode.withNoGrad { vae.encode(images).mean * vae.config.scalingFactor }
    }

    /// Pixels per latent pixel along each side: 2^(VAE blocks − 1), or 1 without a VAE.
    public var scaleFactor: Int { vae.map { 1 << ($0.config.blockOutChannels.count - 1) } ?? 1 }

    /// The text encoder's last hidden states for `prompts` (padded to the tokenizer's
    /// max length) -> [B, maxLength, hidden].
    public func encode(_ prompts: [String]) -> Tensor {
        let ids = prompts.map { tokenizer.encode($0, padTo: tokenizer.maxLength) }
        return GradMode.withNoGrad { textEncoder(ids) }
    }

    /// Images in model space (about [-1, 1]) from final latents.
    public func decode(_ latents: Tensor) -> Tensor {
        guard let vae else { return latents }
        return GradMode.withNoGrad { vae.decode(latents / vae.config.scalingFactor) }
    }

    /// The scheduler of `kind` (nil: the folder's own, `defaultSchedulerKind`) on this
    /// model's noise schedule, ready for `setTimesteps` (each sampling run needs its own:
    /// PNDM's steps keep state). For a latent model, as
    /// diffusers' StableDiffusionPipeline does on loading, steps_offset is 1 and sample
    /// clipping off (SD 1.x folders ship a PNDM config, which leaves DDIM's default
    /// clipping on, wrong for unbounded latents). A pixel-space model keeps its config:
    /// there clipping x̂₀ to [-1, 1] is what keeps DDIM's first steps from amplifying the
    /// noise estimate's error 1/sqrt(ᾱ_t)-fold.
    public func scheduler(_ requested: SchedulerKind?) throws -> DiffusionScheduler {
        let kind = requested ?? defaultSchedulerKind
        var config = try SchedulerConfig(contentsOf: schedulerConfigPath, for: kind)
        if vae != nil {
            config.stepsOffset = 1
            config.clipSample = false
        }
        switch kind {
        case .ddim: return DDIMScheduler(config: config)
        case .ddpm: return DDPMScheduler(config: config)
        case .pndm: return PNDMScheduler(config: config)
        }
    }
}
