import Diffusion
import Formats
import Foundation
import Tensor

/// The embedded default's architecture: a word-level CLIP tokenizer over the world's
/// vocabulary, a small CLIP text encoder and a pixel-space UNet for 32x32 scenes, on a
/// DDPM noise schedule. Sized to train on two CPU cores in about an hour.
public enum EmbeddedModel {
    /// The longest caption of the world is well under 24 tokens with bos and eos.
    public static let maxTokens = 24

    public static var tokenizerFiles:
        (vocabulary: [String: Int], merges: [(String, String)], maxLength: Int)
    {
        let (vocabulary, merges) = BPETraining.train(words: WorldVocabulary.words)
        return (vocabulary, merges, maxTokens)
    }

    public static func textEncoderConfig(vocabularySize: Int) -> CLIPTextConfig {
        CLIPTextConfig(
            vocabularySize: vocabularySize, hiddenSize: 64, intermediateSize: 256, layers: 2,
            heads: 4, maxPositions: maxTokens)
    }

    /// Plain resnets at 32x32, cross-attention at 16x16 and 8x8.
    public static let unetConfig = UNetConfig(
        sampleSize: World.size, inChannels: 3, outChannels: 3, blockOutChannels: [32, 64, 64],
        downBlocks: [.plain, .crossAttention, .crossAttention],
        upBlocks: [.crossAttention, .crossAttention, .plain], layersPerBlock: 1, heads: [4, 4, 4],
        crossAttentionDim: 64, normGroups: 8)

    /// DDPM's linear schedule (Ho et al. 2020: 1e-4 to 0.02 over 1000 steps), with x̂₀
    /// clipped to the pixel range [-1, 1] while sampling, as diffusers' pixel-space DDPM
    /// models are configured.
    public static var schedulerConfig: SchedulerConfig {
        var config = SchedulerConfig()
        config.clipSample = true
        config.stepsOffset = 1
        return config
    }
}

extension EmbeddedModel {
    /// The folder name of the trained model in the World target's `Resources`.
    public static let shippedFolderName = "model"

    /// The trained embedded model that ships with the package (a diffusers folder): what
    /// every `--model` option defaults to.
    public static func shippedDirectory() throws -> String {
        guard
            let path = Bundle.module.path(
                forResource: "Resources/" + shippedFolderName, ofType: nil)
        else {
            throw ModelError(
                file: "Resources/\(shippedFolderName)",
                "the World module's resource bundle holds no trained model (run duo world pretrain and pass --model)"
            )
        }
        return path
    }
}

extension EmbeddedModel {
    /// Copies the shipped model's `duo_defaults.json` (duo's defaults measured for this
    /// architecture) into a model folder `duo world pretrain` writes, so that a rebuilt model
    /// gets the same defaults as the shipped one.
    public static func writeDefaults(into folder: String) throws {
        let name = StableDiffusion.defaultsFileName
        let text = try String(contentsOfFile: try shippedDirectory() + "/" + name, encoding: .utf8)
        try AtomicFile.write(text, to: folder + "/" + name)
    }
}
