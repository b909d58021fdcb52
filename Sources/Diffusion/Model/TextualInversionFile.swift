import Formats
import Foundation
import Tensor

/// Learned token embeddings in diffusers' textual-inversion format
/// (`learned_embeds.safetensors`): one tensor per token, named by the token string, of
/// the text encoder's hidden size. `load_textual_inversion` in diffusers reads the same.
public enum TextualInversionFile {
    /// Writes `tokens` to `path` atomically.
    public static func save(_ tokens: [(token: String, embedding: Tensor)], to path: String, metadata: [String: String] = [:]) throws {
        var writer = SafeTensorsWriter(metadata: metadata)
        for (token, vector) in tokens {
            try writer.add(token, shape: [vector.count], values: vector.scalars)
        }
        try writer.write(to: path)
    }

    /// Adds the tokens of `path` to `model` (tokenizer and text encoder).
    public static func load(_ path: String, into model: StableDiffusion) throws {
        let file = try SafeTensorsReader(path: path)
        guard !file.names.isEmpty else { throw ModelError(file: path, "holds no token embeddings") }
        let tokens = try file.names.sorted().map { name -> (String, Tensor) in
            let values = try file.floats(name)
            return (name, Tensor(values, shape: [values.count]))
        }
        try model.addTokens(tokens, source: path)
    }
}
