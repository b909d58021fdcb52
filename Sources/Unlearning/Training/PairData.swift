import Diffusion
import Formats
import Foundation
import Tensor

/// The pairs of a `duo synthesize` folder, in model space, for training: safe (winner)
/// and unsafe (loser) images, [N, 3, H, W] in [-1, 1], plus the manifest's digest.
public struct PairData {
    public let safe: Tensor
    public let unsafe: Tensor
    /// The unsafe prompts, for ESD (which prompts the trained model with the concept).
    public let unsafePrompts: [String]
    /// The safe prompts (the unsafe ones without the concept), for prompted DUO's prior term.
    public let safePrompts: [String]
    /// SHA-256 of manifest.jsonl: which pairs a run trained on.
    public let manifestDigest: String

    public var count: Int { safe.shape[0] }

    /// Reads `directory/manifest.jsonl` and the PNGs it names. Fails naming the file and
    /// line of a malformed record, or the image that is missing or of another size.
    public init(directory: String) throws {
        let manifest = directory + "/manifest.jsonl"
        guard let data = FileManager.default.contents(atPath: manifest) else {
            throw UnlearningError("\(manifest): cannot read the pairs manifest (make pairs with duo synthesize)")
        }
        var safeImages: [Tensor] = []
        var unsafeImages: [Tensor] = []
        var prompts: [String] = []
        var safePrompts: [String] = []
        var size: (Int, Int)?
        for (number, line) in String(decoding: data, as: UTF8.self).split(separator: "\n").enumerated() {
            guard let value = try? JSONParser.parse(Array(line.utf8)),
                  let safe = value["safe"]?.string, let unsafe = value["unsafe"]?.string,
                  let prompt = value["unsafe_prompt"]?.string, let safePrompt = value["safe_prompt"]?.string
            else { throw UnlearningError("\(manifest):\(number + 1): not a pair record (expected \"safe\", \"unsafe\", \"unsafe_prompt\" and \"safe_prompt\")") }
            for (file, list) in [(safe, 0), (unsafe, 1)] {
                let path = directory + "/" + file
                let image = try PNGImage(contentsOf: path)
                if let (w, h) = size, (w, h) != (image.width, image.height) {
                    throw UnlearningError("\(path): \(image.width)x\(image.height), but the first pair is \(w)x\(h)")
                }
                size = (image.width, image.height)
                if list == 0 { safeImages.append(ImageConversion.modelInput(image)) } else { unsafeImages.append(ImageConversion.modelInput(image)) }
            }
            prompts.append(prompt)
            safePrompts.append(safePrompt)
        }
        guard !safeImages.isEmpty else { throw UnlearningError("\(manifest): holds no pairs") }
        self.safe = concat(safeImages, axis: 0)
        self.unsafe = concat(unsafeImages, axis: 0)
        unsafePrompts = prompts
        self.safePrompts = safePrompts
        manifestDigest = try FileDigest.sha256(ofFile: manifest)
    }
}

extension PairData {
    /// Pairs given directly (benchmarks, tests): [N, 3, H, W] each, in [-1, 1].
    public init(safe: Tensor, unsafe: Tensor, unsafePrompts: [String], safePrompts: [String]? = nil) {
        self.safe = safe
        self.unsafe = unsafe
        self.unsafePrompts = unsafePrompts
        self.safePrompts = safePrompts ?? unsafePrompts.map { _ in "" }
        manifestDigest = ""
    }
}
