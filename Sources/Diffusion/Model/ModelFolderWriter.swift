import Foundation
import Formats

/// Writes a text-to-image model as a diffusers folder that duo and diffusers both read:
/// `model_index.json`, `tokenizer/`, `text_encoder/`, `unet/`, `scheduler/` (a pixel-space
/// model has no `vae/`). The folder is written next to its destination and renamed into
/// place, so a reader never sees half a model.
public enum ModelFolderWriter {
    public static func write(
        to directory: String,
        tokenizer: (vocabulary: [String: Int], merges: [(String, String)], maxLength: Int),
        textEncoder: CLIPTextModel, unet: UNet2DConditionModel, scheduler: SchedulerConfig
    ) throws {
        let staging = directory + ".tmp-\(getpid())"
        try? FileManager.default.removeItem(atPath: staging)
        do {
            try writeComponents(
                to: staging, tokenizer: tokenizer, textEncoder: textEncoder, unet: unet,
                scheduler: scheduler)
        } catch {
            // A failed write (a full disk) leaves no half model behind.
            try? FileManager.default.removeItem(atPath: staging)
            throw error
        }
        try? FileManager.default.removeItem(atPath: directory)
        do {
            try FileManager.default.moveItem(atPath: staging, toPath: directory)
        } catch {
            throw ModelError(
                file: directory,
                "cannot move the written model into place: \(FileProblem.reason(error))")
        }
    }

    /// The folder's files, written into `staging`.
    static func writeComponents(
        to staging: String,
        tokenizer: (vocabulary: [String: Int], merges: [(String, String)], maxLength: Int),
        textEncoder: CLIPTextModel, unet: UNet2DConditionModel, scheduler: SchedulerConfig
    ) throws {
        for sub in ["text_encoder", "unet", "scheduler"] {
            try FileManager.default.createDirectory(
                atPath: staging + "/" + sub, withIntermediateDirectories: true)
        }
        try BPETraining.writeFolder(
            staging + "/tokenizer", vocabulary: tokenizer.vocabulary,
            merges: tokenizer.merges, maxLength: tokenizer.maxLength)
        try WeightLoading.save(
            textEncoder, to: staging + "/text_encoder/model.safetensors", metadata: ["format": "pt"]
        )
        try WeightLoading.save(
            unet, to: staging + "/unet/diffusion_pytorch_model.safetensors",
            metadata: ["format": "pt"])
        let special = (
            bos: tokenizer.vocabulary[CLIPTokenizer.startOfText]!,
            eos: tokenizer.vocabulary[CLIPTokenizer.endOfText]!
        )
        try writeJSON(
            textEncoderConfig(textEncoder.config, bos: special.bos, eos: special.eos),
            to: staging + "/text_encoder/config.json")
        try writeJSON(unetConfig(unet.config), to: staging + "/unet/config.json")
        try writeJSON(schedulerConfig(scheduler), to: staging + "/scheduler/scheduler_config.json")
        try writeJSON(modelIndex, to: staging + "/model_index.json")
    }

    /// A JSON object from (key, already-encoded value) pairs, in order.
    static func object(_ members: [(String, String)]) -> String {
        "{\n" + members.map { "  \(jsonQuoted($0.0)): \($0.1)" }.joined(separator: ",\n") + "\n}\n"
    }

    static func string(_ s: String) -> String { jsonQuoted(s) }
    static func list<T>(_ items: [T], _ encode: (T) -> String) -> String {
        "[" + items.map(encode).joined(separator: ", ") + "]"
    }

    private static func writeJSON(_ text: String, to path: String) throws {
        do {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            throw ModelError(file: path, "cannot write: \(FileProblem.reason(error))")
        }
    }

    static let modelIndex = object([
        ("_class_name", string("StableDiffusionPipeline")),
        ("_diffusers_version", string("0.42.1")),
        ("scheduler", list(["diffusers", "DDPMScheduler"], string)),
        ("text_encoder", list(["transformers", "CLIPTextModel"], string)),
        ("tokenizer", list(["transformers", "CLIPTokenizer"], string)),
        ("unet", list(["diffusers", "UNet2DConditionModel"], string)),
        ("vae", "[null, null]"), ("safety_checker", "[null, null]"),
        ("feature_extractor", "[null, null]"), ("requires_safety_checker", "false"),
    ])

    static func unetConfig(_ c: UNetConfig) -> String {
        object([
            ("_class_name", string("UNet2DConditionModel")),
            ("_diffusers_version", string("0.42.1")),
            ("sample_size", "\(c.sampleSize)"), ("in_channels", "\(c.inChannels)"),
            ("out_channels", "\(c.outChannels)"),
            ("block_out_channels", list(c.blockOutChannels) { "\($0)" }),
            ("down_block_types", list(c.downBlocks) { string($0.rawValue) }),
            ("up_block_types", list(c.upBlocks) { string($0.rawValue) }),
            ("mid_block_type", string(c.midBlock.rawValue)),
            ("layers_per_block", "\(c.layersPerBlock)"),
            ("attention_head_dim", list(c.heads) { "\($0)" }),
            ("cross_attention_dim", "\(c.crossAttentionDim)"),
            ("norm_num_groups", "\(c.normGroups)"), ("norm_eps", "\(c.normEps)"),
            ("transformer_layers_per_block", "\(c.transformerLayersPerBlock)"),
            ("use_linear_projection", "\(c.useLinearProjection)"),
            ("flip_sin_to_cos", "\(c.flipSinToCos)"),
            ("freq_shift", "\(Int(c.freqShift))"), ("act_fn", string("silu")),
        ])
    }

    static func textEncoderConfig(_ c: CLIPTextConfig, bos: Int, eos: Int) -> String {
        object([
            ("architectures", list(["CLIPTextModel"], string)),
            ("model_type", string("clip_text_model")),
            ("vocab_size", "\(c.vocabularySize)"), ("hidden_size", "\(c.hiddenSize)"),
            ("intermediate_size", "\(c.intermediateSize)"), ("num_hidden_layers", "\(c.layers)"),
            ("num_attention_heads", "\(c.heads)"), ("max_position_embeddings", "\(c.maxPositions)"),
            ("hidden_act", string(c.activation.rawValue)), ("layer_norm_eps", "\(c.layerNormEps)"),
            ("projection_dim", "\(c.hiddenSize)"), ("bos_token_id", "\(bos)"),
            ("eos_token_id", "\(eos)"),
            ("pad_token_id", "\(eos)"), ("torch_dtype", string("float32")),
        ])
    }

    static func schedulerConfig(_ c: SchedulerConfig) -> String {
        object([
            ("_class_name", string("DDPMScheduler")), ("_diffusers_version", string("0.42.1")),
            ("num_train_timesteps", "\(c.numTrainTimesteps)"), ("beta_start", "\(c.betaStart)"),
            ("beta_end", "\(c.betaEnd)"), ("beta_schedule", string(c.betaSchedule.rawValue)),
            ("clip_sample", "\(c.clipSample)"), ("clip_sample_range", "\(c.clipSampleRange)"),
            ("set_alpha_to_one", "\(c.setAlphaToOne)"), ("steps_offset", "\(c.stepsOffset)"),
            ("prediction_type", string(c.predictionType.rawValue)),
            ("timestep_spacing", string(c.timestepSpacing.rawValue)),
            ("variance_type", string(c.varianceType.rawValue)),
        ])
    }
}
