import Formats
import Foundation
import Tensor

/// A learned token embedding in diffusers' textual-inversion format
/// (`learned_embeds.safetensors`): one tensor, named by the token string, of the text
/// encoder's hidden size ([hidden] or [1, hidden]). `load_textual_inversion` in diffusers
/// reads the same.
public enum TextualInversionFile {
    /// Writes `token`'s `embedding` [hidden] to `path` atomically, as diffusers'
    /// `textual_inversion.py` saves it (`save_progress`, l.175–185 at 58eb52c): the
    /// placeholder's row of the embedding table, [1, hidden], with metadata `format: pt`.
    public static func save(
        token: String, embedding: Tensor, to path: String, metadata: [String: String] = [:]
    ) throws {
        var writer = SafeTensorsWriter(metadata: metadata.merging(["format": "pt"]) { $1 })
        try writer.add(token, shape: [1, embedding.count], values: embedding.scalars)
        try writer.write(to: path)
    }

    /// Adds the tokens of `path` to `model` (tokenizer and text encoder).
    public static func load(_ path: String, into model: StableDiffusion) throws {
        let file = try SafeTensorsReader(path: path)
        guard !file.names.isEmpty else { throw ModelError(file: path, "holds no token embeddings") }
        let tokens = try file.names.sorted().map { name -> (String, Tensor) in
            let shape = try file.info(name).shape
            guard shape.count == 1 || shape.count == 2 && shape[0] == 1 else {
                throw ModelError(
                    file: path, key: name,
                    "shape \(shape): one vector per token ([hidden] or [1, hidden]) expected")
            }
            let values = try file.floats(name)
            return (name, Tensor(values, shape: [values.count]))
        }
        try model.addTokens(tokens, source: path)
    }
}
