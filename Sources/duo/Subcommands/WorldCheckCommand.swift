import ArgumentParser
import Diffusion
import Formats
import Foundation
import Tensor
import World

extension Duo {
    /// `duo world check`: concept rates per prompt row, faithfulness and world FID.
    struct WorldCheckCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check",
            abstract:
                "Sample a world model on prompt rows and read the images with the world detectors.",
            discussion: """
                For each concept: the share of images showing it for explicit, synonym, \
                implicit and neutral prompts; prompt faithfulness (shape and colour as \
                prompted) on neutral prompts; the world FID against real world images; and \
                the detectors' accuracy on held-out world images.
                """)

        @Option(
            help:
                "A world model folder (from duo world pretrain: DIR/model; default: the embedded model)."
        )
        var model: String?

        @Option(
            help:
                "A LoRA adapter or UNet weights file to check the model with (e.g. from duo unlearn)."
        )
        var lora: String?

        @Option(
            help: "Images per prompt row (at 200, a rate's standard error is at most 3.5 points).")
        var samples = WorldCheck.Parameters().samples

        @OptionGroup var sampling: SamplingOptions

        @Option(
            help:
                "Also write a PNG with the first 8 images of every prompt row, one row each (explicit, synonym, implicit, neutral per concept)."
        )
        var grid: String?

        @Flag(help: "Print one JSON object instead of a table.")
        var json = false

        func validate() throws {
            // Each prompt row's images are sampled as one batch.
            guard (2...10_000).contains(samples) else {
                throw UsageError("--samples must be from 2 to 10000, got \(samples)")
            }
            if let grid {
                guard grid.hasSuffix(".png") else {
                    throw UsageError("--grid must name a .png file, got \(grid)")
                }
                try OptionCheck.writableFile(grid, "--grid")
            }
        }

        func run() throws {
            if let grid { try OptionCheck.replaceablePNG(grid, "--grid") }
            let diffusion = try StableDiffusion.load(directory: try Lookup.model(model))
            if let lora {
                _ = try LoRAFile.load(
                    lora, into: diffusion.unet, textEncoder: diffusion.textEncoder)
            }
            var parameters = WorldCheck.Parameters()
            parameters.samples = samples
            parameters.steps = sampling.steps
            parameters.guidance = sampling.guidance
            parameters.seed = sampling.seed
            let bar = ProgressLine("prompt rows")
            var cells: [PNGImage] = []
            let result = try WorldCheck.run(
                model: diffusion, detector: try WorldDetector.shipped(), parameters: parameters,
                progress: { bar.update($0, of: $1) },
                rowImages: { _, _, images in
                    let first = split(
                        images,
                        sizes: [min(8, images.shape[0]), images.shape[0] - min(8, images.shape[0])]
                            .filter { $0 > 0 }, axis: 0)[0]
                    cells += try ImageConversion.pngImages(first * 0.5 + 0.5)
                })
            if let grid {
                try ImageGrid.make(cells.map { $0.scaled(by: 3) }, columns: 8).write(to: grid)
            }
            print(json ? result.json : result.table)
        }
    }
}
