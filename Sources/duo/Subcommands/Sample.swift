import ArgumentParser
import Diffusion
import Formats
import Foundation
import Tensor

extension Duo {
    /// `duo sample`: text to image with a model folder, optionally with LoRA adapters.
    struct Sample: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Generate images from a prompt with a diffusers model folder.",
            discussion: """
                Classifier-free guided sampling as diffusers' StableDiffusionPipeline. The \
                same seed gives the same images; image i of --count N is the same image \
                whatever N is.
                """)

        @OptionGroup var modelOption: ModelOption

        @Option(
            help:
                "A LoRA adapter (.safetensors in diffusers' format, e.g. from duo unlearn) or a UNet weights file (a diffusers UNet state_dict, partial or whole) as PATH or PATH@SCALE; repeat to stack several."
        )
        var lora: [String] = []

        @Option(
            help:
                "Strength of a single --lora (1: as trained, 0: the base model; default 1).")
        var loraScale: Float?

        @Option(help: "The prompt.")
        var prompt: String

        @Option(help: "The prompt to steer away from (the unconditional side of guidance).")
        var negativePrompt = ""

        @OptionGroup var sampling: SamplingOptions

        @OptionGroup var precisionOption: PrecisionOption

        @Option(
            help:
                "Initial noise from a .safetensors file (its tensor 'latents', [count, C, h, w]), as diffusers' latents= argument."
        )
        var latents: String?

        @Option(
            help: "ddim, ddpm or pndm (default: the model folder's own; PNDM for SD 1.x folders).")
        var scheduler: String?

        @Option(help: "Image height in pixels (default: the model's sample size).")
        var height: Int?

        @Option(help: "Image width in pixels (default: the model's sample size).")
        var width: Int?

        @Option(help: "How many images.")
        var count = 1

        @Option(help: "Output PNG path; with --count > 1, NAME-1.png ... NAME-N.png.")
        var out: String

        func validate() throws {
            // One call holds all its images in memory: far more than any would fit.
            guard (1...100_000).contains(count) else {
                throw UsageError("--count must be from 1 to 100000, got \(count)")
            }
            if let loraScale {
                guard !lora.isEmpty else {
                    throw UsageError("--lora-scale needs --lora (the adapter to scale)")
                }
                try OptionCheck.finite(loraScale, "--lora-scale")
            }
            if let height, height < 1 {
                throw UsageError("--height must be at least 1, got \(height)")
            }
            if let width, width < 1 {
                throw UsageError("--width must be at least 1, got \(width)")
            }
            if let scheduler, kind == nil {
                throw UsageError(
                    "--scheduler must be ddim, ddpm or pndm, got \(scheduler)")
            }
            guard out.hasSuffix(".png") else {
                throw UsageError("--out must name a .png file, got \(out)")
            }
            try OptionCheck.writableFile(out, "--out")
        }

        /// The images' paths: --out, or with --count N its name with -1 ... -N.
        private var outputPaths: [String] {
            count == 1 ? [out] : (1...count).map { String(out.dropLast(4)) + "-\($0).png" }
        }

        private var kind: SchedulerKind? {
            scheduler.flatMap(SchedulerKind.init(shortName:))
        }

        func run() throws {
            for path in outputPaths { try OptionCheck.replaceablePNG(path, "--out") }
            _ = precisionOption.apply()
            let diffusion = try StableDiffusion.load(directory: try modelOption.directory())
            let adapters = try AdapterSpec.stack(lora, loraScale: loraScale)
            _ = try LoRAFile.load(
                adapters, into: diffusion.unet, textEncoder: diffusion.textEncoder)
            PromptCheck.warn([prompt, negativePrompt], tokenizer: diffusion.tokenizer)
            var parameters = TextToImage.Parameters(prompt: prompt)
            parameters.negativePrompt = negativePrompt
            parameters.steps = sampling.steps
            parameters.guidance = sampling.guidance
            parameters.seed = sampling.seed
            parameters.height = height
            parameters.width = width
            parameters.count = count
            parameters.scheduler = kind
            let initial = try latents.map {
                let (h, w) = try TextToImage.latentSize(model: diffusion, parameters: parameters)
                return try Self.readLatents(
                    $0, shape: [count, diffusion.unet.config.inChannels, h, w])
            }
            let bar = ProgressLine("sampling")
            let images = try TextToImage.sample(
                model: diffusion, parameters: parameters, latents: initial
            ) {
                bar.update($0, of: $1)
            }
            for (image, path) in zip(try ImageConversion.pngImages(images), outputPaths) {
                try image.write(to: path)
                print(path)
            }
        }

        /// The tensor 'latents' (or the file's only tensor), which must have `shape`
        /// ([count, the UNet's in_channels, the latent size]).
        static func readLatents(_ path: String, shape: [Int]) throws -> Tensor {
            let file = try SafeTensorsReader(path: path)
            let name =
                file.contains("latents")
                ? "latents" : (file.tensors.count == 1 ? file.tensors[0].name : "latents")
            let info = try file.info(name)
            guard info.shape == shape else {
                throw ModelError(
                    file: path, key: name,
                    "shape \(info.shape), expected \(shape) (--count, the UNet's in_channels, the latent size)"
                )
            }
            let values = try file.floats(name)
            guard values.allSatisfy(\.isFinite) else {
                throw ModelError(file: path, key: name, "holds NaN or infinite values")
            }
            return Tensor(values, shape: info.shape)
        }
    }
}
