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
    /// line of a malformed record, or the image that is missing or of another size, or
    /// when the folder holds fewer pairs than its `duo synthesize` run set out to make.
    public init(directory: String) throws {
        let manifest = directory + "/manifest.jsonl"
        guard let data = FileManager.default.contents(atPath: manifest) else {
            throw UnlearningError(
                "\(manifest): cannot read the pairs manifest (make pairs with duo synthesize)")
        }
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n")
        try Self.checkComplete(directory, found: lines.count)
        var safeImages: [Tensor] = []
        var unsafeImages: [Tensor] = []
        var prompts: [String] = []
        var safePrompts: [String] = []
        var size: (Int, Int)?
        for (number, line) in lines.enumerated() {
            guard let value = try? JSONParser.parse(Array(line.utf8)),
                let safe = value["safe"]?.string, let unsafe = value["unsafe"]?.string,
                let prompt = value["unsafe_prompt"]?.string,
                let safePrompt = value["safe_prompt"]?.string
            else {
                throw UnlearningError(
                    "\(manifest):\(number + 1): not a pair record (expected \"safe\", \"unsafe\", \"unsafe_prompt\" and \"safe_prompt\")"
                )
            }
            for (file, list) in [(safe, 0), (unsafe, 1)] {
                let path = directory + "/" + file
                let image = try PNGImage(contentsOf: path)
                if let (w, h) = size, (w, h) != (image.width, image.height) {
                    throw UnlearningError(
                        "\(path): \(image.width)x\(image.height), but the first pair is \(w)x\(h)")
                }
                size = (image.width, image.height)
                if list == 0 {
                    safeImages.append(ImageConversion.modelInput(image))
                } else {
                    unsafeImages.append(ImageConversion.modelInput(image))
                }
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

    /// Refuses a folder whose `duo synthesize` run stopped before it made the pairs its
    /// synthesis.json asks for: training on part of them would look like any other run.
    /// A folder made some other way (no synthesis.json) promises no count.
    /// Refuses pairs that `duo synthesize` made for another concept than `concept`
    /// (their synthesis.json names it): trained on, they would erase the wrong concept.
    /// Pairs without a synthesis.json (made by other means) are not checked.
    public static func checkMadeFor(_ concept: String, directory: String) throws {
        let settings = directory + "/synthesis.json"
        guard FileManager.default.fileExists(atPath: settings) else { return }
        let fields = Dictionary(
            try PairSettings.recordedFields(settings), uniquingKeysWith: { a, _ in a })
        // The fields are JSON text: the name is quoted there.
        guard let made = fields["concept"], made != JSONValue.string(concept).line else { return }
        throw UnlearningError(
            "\(directory): pairs of the concept \(made) (its synthesis.json), not \"\(concept)\"; "
                + "give the pairs of \(concept) (duo synthesize --concept \(concept))")
    }

    static func checkComplete(_ directory: String, found: Int) throws {
        let settings = directory + "/synthesis.json"
        guard FileManager.default.fileExists(atPath: settings) else { return }
        let fields = Dictionary(
            try PairSettings.recordedFields(settings), uniquingKeysWith: { a, _ in a })
        guard let promised = fields["count"].flatMap({ Int($0) }), found < promised else { return }
        throw UnlearningError(
            "\(directory): manifest.jsonl holds \(found) of the \(promised) pairs synthesis.json asks for "
                + "(duo synthesize was stopped); run the same duo synthesize command again to finish them"
        )
    }
}

extension PairData {
    /// Pairs given directly (benchmarks, tests): [N, 3, H, W] each, in [-1, 1].
    public init(safe: Tensor, unsafe: Tensor, unsafePrompts: [String], safePrompts: [String]? = nil)
    {
        self.safe = safe
        self.unsafe = unsafe
        self.unsafePrompts = unsafePrompts
        self.safePrompts = safePrompts ?? unsafePrompts.map { _ in "" }
        manifestDigest = ""
    }
}
