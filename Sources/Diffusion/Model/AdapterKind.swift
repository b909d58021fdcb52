import Formats

/// What an adapter file holds, told apart by its keys: a LoRA (peft keys under `unet.` and
/// `text_encoder.`, `...lora_A.weight` / `...lora_B.weight`) or UNet weights (diffusers UNet parameter names,
/// `UNetWeightsFile`).
public enum AdapterKind: Sendable, Equatable {
    case lora
    case unetWeights

    /// The kind of the file at `path` for `unet`: LoRA if any key is a LoRA key, UNet
    /// weights if any key names one of `unet`'s parameters (each loader then checks every
    /// key), and an error naming the file and a key otherwise.
    public static func of(_ path: String, unet: UNet2DConditionModel) throws -> AdapterKind {
        let file = try SafeTensorsReader(path: path)
        let keys = file.tensors.map(\.name)
        guard let first = keys.first else {
            throw ModelError(
                file: path, "holds no tensors (expected a UNet LoRA or UNet weights file)")
        }
        if keys.contains(where: isLoRAKey) { return .lora }
        let parameters = Set(unet.namedParameters.map(\.0))
        if keys.contains(where: parameters.contains) { return .unetWeights }
        throw ModelError(
            file: path, key: first,
            "is neither a UNet LoRA weight (unet.*.lora_A/lora_B.weight) nor a parameter of this UNet (diffusers names, as a UNet weights file holds)"
        )
    }

    /// peft's LoRA keys, as `LoRAFile` reads them.
    static func isLoRAKey(_ key: String) -> Bool {
        key.hasSuffix(".lora_A.weight") || key.hasSuffix(".lora_B.weight")
    }
}
