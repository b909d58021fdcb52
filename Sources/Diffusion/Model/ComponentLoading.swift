import Foundation
import Formats
import Tensor

/// Loading the components of a diffusers model folder: `<component>/config.json` and its
/// safetensors weights (fp32 or fp16; pickle `.bin` files are refused: loading a
/// checkpoint must never run code).
public enum ComponentLoading {
    /// The weights file of a component directory, by diffusers/transformers naming.
    static func weightsFile(in directory: String, names: [String]) throws -> SafeTensorsReader {
        let candidates = names.flatMap { [$0 + ".safetensors", $0 + ".fp16.safetensors"] }
        for name in candidates {
            let path = (directory as NSString).appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: path) {
                return try SafeTensorsReader(path: path)
            }
        }
        let pickled = names.map { (directory as NSString).appendingPathComponent($0 + ".bin") }
        if let bin = pickled.first(where: FileManager.default.fileExists) {
            throw ModelError(
                file: bin,
                "pickle checkpoints are not loaded (they can run code); convert it to safetensors")
        }
        throw ModelError(
            file: directory, "missing weights (expected \(candidates.joined(separator: " or ")))")
    }

    /// Builds a component from its `config.json` (without random initialization) and
    /// fills it from its weights file, trying `alternatives` for older key spellings.
    static func load<Model: Layer>(
        _ directory: String, weights: String, alternatives: @escaping (String) -> [String],
        build: (ConfigFile) throws -> Model
    ) throws -> Model {
        let model = try build(
            try ConfigFile(path: (directory as NSString).appendingPathComponent("config.json")))
        let file = try weightsFile(in: directory, names: [weights])
        try WeightLoading.load(model, from: file, alternatives: alternatives)
        return model
    }
}

extension UNet2DConditionModel {
    /// Loads `directory` (a diffusers `unet/` folder).
    public static func load(directory: String) throws -> UNet2DConditionModel {
        try ComponentLoading.load(
            directory, weights: "diffusion_pytorch_model",
            alternatives: SpatialSelfAttention.legacyName
        ) {
            UNet2DConditionModel(config: try UNetConfig(file: $0), key: nil)
        }
    }
}

extension CLIPTextModel {
    /// Loads `directory` (a diffusers `text_encoder/` folder, keys with or without the
    /// `text_model.` prefix).
    public static func load(directory: String) throws -> CLIPTextModel {
        try ComponentLoading.load(
            directory, weights: "model", alternatives: CLIPTextModel.legacyName
        ) {
            CLIPTextModel(config: try CLIPTextConfig(file: $0), key: nil)
        }
    }
}

extension AutoencoderKL {
    /// Loads `directory` (a diffusers `vae/` folder).
    public static func load(directory: String) throws -> AutoencoderKL {
        try ComponentLoading.load(
            directory, weights: "diffusion_pytorch_model",
            alternatives: SpatialSelfAttention.legacyName
        ) {
            AutoencoderKL(config: try VAEConfig(file: $0), key: nil)
        }
    }
}
