/// The fields of diffusers' UNet2DConditionModel config that SD 1.x/2.x models use.
/// Anything else set to a value duo does not implement is an error, not a silent default.
public struct UNetConfig: Equatable, Sendable {
    public enum DownBlock: String, Sendable {
        case crossAttention = "CrossAttnDownBlock2D", plain = "DownBlock2D"
    }
    public enum UpBlock: String, Sendable {
        case crossAttention = "CrossAttnUpBlock2D", plain = "UpBlock2D"
    }
    public enum MidBlock: String, Sendable {
        case crossAttention = "UNetMidBlock2DCrossAttn", plain = "UNetMidBlock2D"
    }

    public var sampleSize: Int
    public var inChannels: Int
    public var outChannels: Int
    public var blockOutChannels: [Int]
    public var downBlocks: [DownBlock]
    public var upBlocks: [UpBlock]
    public var midBlock: MidBlock
    public var layersPerBlock: Int
    /// Heads per down block (diffusers' `attention_head_dim`, which counts heads in SD 1.x).
    public var heads: [Int]
    public var crossAttentionDim: Int
    public var normGroups: Int
    public var normEps: Float
    public var transformerLayersPerBlock: Int
    public var useLinearProjection: Bool
    public var flipSinToCos: Bool
    public var freqShift: Float

    public init(
        sampleSize: Int, inChannels: Int, outChannels: Int, blockOutChannels: [Int],
        downBlocks: [DownBlock], upBlocks: [UpBlock], midBlock: MidBlock = .crossAttention,
        layersPerBlock: Int, heads: [Int], crossAttentionDim: Int, normGroups: Int = 32,
        normEps: Float = 1e-5, transformerLayersPerBlock: Int = 1,
        useLinearProjection: Bool = false, flipSinToCos: Bool = true, freqShift: Float = 0
    ) {
        self.sampleSize = sampleSize
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.blockOutChannels = blockOutChannels
        self.downBlocks = downBlocks
        self.upBlocks = upBlocks
        self.midBlock = midBlock
        self.layersPerBlock = layersPerBlock
        self.heads = heads
        self.crossAttentionDim = crossAttentionDim
        self.normGroups = normGroups
        self.normEps = normEps
        self.transformerLayersPerBlock = transformerLayersPerBlock
        self.useLinearProjection = useLinearProjection
        self.flipSinToCos = flipSinToCos
        self.freqShift = freqShift
    }

    /// The time embedding width: 4x the first block's channels.
    public var timeEmbedDim: Int { blockOutChannels[0] * 4 }
}

extension UNetConfig {
    /// Reads `unet/config.json`.
    public init(file config: ConfigFile) throws {
        let blocks = try config.sizes(
            "block_out_channels", count: try config.strings("down_block_types").count)
        let n = blocks.count
        guard n > 0 else {
            throw ModelError(
                file: config.path, key: "down_block_types", "expected at least 1 block, found none")
        }
        func parse<T: RawRepresentable>(_ key: String, _: T.Type) throws -> [T]
        where T.RawValue == String {
            let names = try config.strings(key)
            guard names.count == n else {
                throw ModelError(
                    file: config.path, key: key, "expected \(n) block types, found \(names.count)")
            }
            return try names.map { name in
                guard let block = T(rawValue: name) else {
                    throw ModelError(
                        file: config.path, key: key, "unsupported block type '\(name)'")
                }
                return block
            }
        }
        let midName = try config.string("mid_block_type", default: "UNetMidBlock2DCrossAttn")
        guard let mid = MidBlock(rawValue: midName) else {
            throw ModelError(
                file: config.path, key: "mid_block_type", "unsupported block type '\(midName)'")
        }
        try Self.rejectUnsupported(config)
        let headsKey =
            config.has("num_attention_heads") ? "num_attention_heads" : "attention_head_dim"
        self.init(
            sampleSize: try config.size("sample_size", default: 64, limit: 1 << 12),
            inChannels: try config.size("in_channels", default: 4),
            outChannels: try config.size("out_channels", default: 4),
            blockOutChannels: blocks,
            downBlocks: try parse("down_block_types", DownBlock.self),
            upBlocks: try parse("up_block_types", UpBlock.self),
            midBlock: mid,
            layersPerBlock: try config.size("layers_per_block", default: 2, limit: 64),
            heads: try config.sizes(headsKey, count: n, default: 8),
            crossAttentionDim: try config.size("cross_attention_dim", default: 1280),
            normGroups: try config.size("norm_num_groups", default: 32),
            normEps: try config.float("norm_eps", default: 1e-5),
            transformerLayersPerBlock: try config.size(
                "transformer_layers_per_block", default: 1, limit: 64),
            useLinearProjection: try config.bool("use_linear_projection", default: false),
            flipSinToCos: try config.bool("flip_sin_to_cos", default: true),
            freqShift: try config.float("freq_shift", default: 0))
        guard normEps > 0, normEps.isFinite else {
            throw ModelError(
                file: config.path, key: "norm_eps", "expected a positive number, found \(normEps)")
        }
        for (i, c) in blocks.enumerated() where c % normGroups != 0 || c % heads[i] != 0 {
            throw ModelError(
                file: config.path, key: "block_out_channels",
                "\(c) channels are not divisible by \(normGroups) groups and \(heads[i]) heads")
        }
    }

    /// Config values of features duo does not implement.
    private static func rejectUnsupported(_ config: ConfigFile) throws {
        try config.require("act_fn", in: ["silu"])
        try config.require("time_embedding_type", in: ["positional"])
        try config.require("resnet_time_scale_shift", in: ["default"])
        try config.require("attention_type", in: ["default"])
        for key in [
            "class_embed_type", "addition_embed_type", "encoder_hid_dim", "time_cond_proj_dim",
            "time_embedding_act_fn", "timestep_post_act", "num_class_embeds",
            "projection_class_embeddings_input_dim", "time_embedding_dim",
        ] where config.has(key) {
            throw ModelError(
                file: config.path, key: key,
                "expected null (duo does not support it), found a value")
        }
        try config.require("center_input_sample", equals: false)
        try config.require("dual_cross_attention", equals: false)
        try config.require("only_cross_attention", equals: false)
        try config.require("conv_in_kernel", equals: 3)
        try config.require("conv_out_kernel", equals: 3)
        try config.require("downsample_padding", equals: 1)
        try config.require("mid_block_scale_factor", equals: 1)
        try config.require("resnet_out_scale_factor", equals: 1)
        try config.require("resnet_skip_time_act", equals: false)
    }
}
