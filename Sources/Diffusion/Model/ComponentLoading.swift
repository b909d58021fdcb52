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
            if FileManager.default.fileExists(atPath: path) { return try SafeTensorsReader(path: path) }
        }
        let pickled = names.map { (directory as NSString).appendingPathComponent($0 + ".bin") }
        if let bin = pickled.first(where: FileManager.default.fileExists) {
            throw ModelError(file: bin, "pickle checkpoints are not loaded (they can run code); convert it to safetensors")
        }
        throw ModelError(file: directory, "missing weights (expected \(candidates.joined(separator: " or ")))")
    }

    static func config(in directory: String) throws -> ConfigFile {
        try ConfigFile(path: (directory as NSString).appendingPathComponent("config.json"))
    }
}

extension UNet2DConditionModel {
    /// Loads `directory` (a diffusers `unet/` folder).
    public static func load(directory: String) throws -> UNet2DConditionModel {
        let config = try UNetConfig(file: try ComponentLoading.config(in: directory))
        let model = UNet2DConditionModel(config: config, key: nil)
        let weights = try ComponentLoading.weightsFile(in: directory, names: ["diffusion_pytorch_model"])
        try WeightLoading.load(model, from: weights, alternatives: SpatialSelfAttention.legacyName)
        return model
    }
}

extension CLIPTextModel {
    /// Loads `directory` (a diffusers `text_encoder/` folder, keys with or without the
    /// `text_model.` prefix).
    public static func load(directory: String) throws -> CLIPTextModel {
        let config = try CLIPTextConfig(file: try ComponentLoading.config(in: directory))
        let model = CLIPTextModel(config: config, key: nil)
        let weights = try ComponentLoading.weightsFile(in: directory, names: ["model"])
        try WeightLoading.load(model, from: weights, alternatives: CLIPTextModel.legacyName)
        return model
    }
}

extension AutoencoderKL {
    /// Loads `directory` (a diffusers `vae/` folder).
    public static func load(directory: String) throws -> AutoencoderKL {
        let config = try VAEConfig(file: try ComponentLoading.config(in: directory))
        let model = AutoencoderKL(config: config, key: nil)
        let weights = try ComponentLoading.weightsFile(in: directory, names: ["diffusion_pytorch_model"])
        try WeightLoading.load(model, from: weights, alternatives: SpatialSelfAttention.legacyName)
        return model
    }
}
