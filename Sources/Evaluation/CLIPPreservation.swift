import Diffusion
import Formats
import Foundation
import Tensor

/// Prior preservation read by a CLIP model from a transformers CLIPModel folder (e.g.
/// openai/clip-vit-large-patch14, the model torchmetrics' CLIPScore defaults to): the
/// CLIP score of a model's keep images against their prompts, and CLIP-FID, the Fréchet
/// distance between the CLIP image features of its keep images and the original's.
///
/// The CLIP score is torchmetrics' CLIPScore (after Hessel et al. 2021): 100 × the cosine of
/// image and prompt embeddings, averaged, the mean floored at 0. CLIP-FID takes the image
/// features as clean-fid's CLIP feature extractor does (projected, not normalized;
/// Kynkäänniemi et al. 2023 on why CLIP features). Prompts longer than the text tower reads
/// are cut keeping eos, as Stable Diffusion's pipelines cut them.
public final class CLIPPreservation: PreservationMetric {
    let model: CLIPModel
    let processor: CLIPImageProcessor
    let folder: String
    /// [keep prompts, projection]: computed once, the prompts are every model's.
    let promptFeatures: Tensor?
    /// The original's keep images and their features, kept for the models after it.
    private var original: (images: [PNGImage], features: Tensor)?

    /// Images per forward pass of the vision tower.
    static let batchSize = 16

    /// Loads the folder (config.json, model.safetensors, the tokenizer's files,
    /// preprocessor_config.json) and embeds `prompts`, the keep prompts in image order.
    public init(folder: String, prompts: [String]) throws {
        self.folder = folder
        let model = try CLIPModel.load(directory: folder)
        self.model = model
        processor = try CLIPImageProcessor(
            file: (folder as NSString).appendingPathComponent("preprocessor_config.json"))
        try Self.checkImageSize(processor, model.config)
        let tokenizer = try CLIPTokenizer(directory: folder)
        let text = model.config.text
        let longest = prompts.map { tokenizer.encode($0).count }.max() ?? 0
        let length = min(longest, tokenizer.maxLength, text.maxPositions)
        let ids = prompts.map { tokenizer.encode($0, padTo: length) }
        if let id = ids.joined().first(where: { $0 >= text.vocabularySize }) {
            throw ModelError(
                file: (folder as NSString).appendingPathComponent("config.json"),
                key: "text_config.vocab_size",
                "\(text.vocabularySize) token embeddings, but the tokenizer gives id \(id)")
        }
        promptFeatures = ids.isEmpty ? nil : GradMode.withNoGrad { model.textFeatures(ids) }
    }

    /// The processor must hand the vision tower images of the size it was trained on.
    static func checkImageSize(_ processor: CLIPImageProcessor, _ config: CLIPConfig) throws {
        let side = config.vision.imageSize
        guard let crop = processor.crop, crop.height == side, crop.width == side else {
            let found = processor.crop.map { "\($0.width)x\($0.height)" } ?? "no center crop"
            throw ModelError(
                file: processor.path, key: "crop_size",
                "expected \(side)x\(side) (config.json vision_config.image_size), found \(found)")
        }
    }

    public var columns: [PreservationColumn] {
        [
            PreservationColumn(
                key: "clip_score", title: "CLIP score", format: .decimal(2, unit: "")),
            PreservationColumn(key: "clip_fid", title: "CLIP-FID", format: .decimal(2, unit: "")),
        ]
    }

    public var summary: String {
        let name = (folder as NSString).lastPathComponent
        return "CLIP score (\(name)): 100 × the cosine of each keep image's CLIP embedding to "
            + "its prompt's, averaged and floored at 0 (torchmetrics' CLIPScore); CLIP-FID: the "
            + "Fréchet distance of the CLIP image features of a model's keep images to the "
            + "original's (0 for the original itself)."
    }

    public func measure(_ images: [PNGImage], original: [PNGImage], isOriginal: Bool) throws
        -> [Double?]
    {
        guard let promptFeatures, images.count == promptFeatures.shape[0],
            original.count == images.count
        else { return [nil, nil] }
        let features = try imageFeatures(images)
        let score = Self.clipScore(imageFeatures: features, promptFeatures: promptFeatures)
        if isOriginal { self.original = (images, features) }
        guard images.count >= 2 else { return [score, nil] }
        if isOriginal { return [score, 0] }
        let reference: Tensor
        if let kept = self.original, kept.images == original {
            reference = kept.features
        } else {
            reference = try imageFeatures(original)
        }
        return [score, FrechetDistance.distance(features: features, reference)]
    }

    /// images -> [N, projection], in batches.
    func imageFeatures(_ images: [PNGImage]) throws -> Tensor {
        let batches = try stride(from: 0, to: images.count, by: Self.batchSize).map { start in
            let batch = Array(images[start..<min(images.count, start + Self.batchSize)])
            let pixels = try processor.pixelValues(batch)
            return GradMode.withNoGrad { model.imageFeatures(pixels) }
        }
        return concat(batches, axis: 0)
    }

    /// torchmetrics' CLIP score of image i against prompt i: max(mean of 100 cos, 0).
    public static func clipScore(imageFeatures: Tensor, promptFeatures: Tensor) -> Double {
        let scores = cosines(imageFeatures, promptFeatures).map { 100 * $0 }
        return max(scores.reduce(0, +) / Double(scores.count), 0)
    }

    /// cos(a_i, b_i) for the rows of a and b [N, D], in Double.
    public static func cosines(_ a: Tensor, _ b: Tensor) -> [Double] {
        precondition(a.rank == 2 && a.shape == b.shape, "features \(a.shape) vs \(b.shape)")
        let width = a.shape[1]
        let (x, y) = (a.scalars.map(Double.init), b.scalars.map(Double.init))
        return (0..<a.shape[0]).map { row in
            let range = row * width..<(row + 1) * width
            var (dot, xx, yy) = (0.0, 0.0, 0.0)
            for i in range {
                dot += x[i] * y[i]
                xx += x[i] * x[i]
                yy += y[i] * y[i]
            }
            return dot / (xx * yy).squareRoot()
        }
    }
}
