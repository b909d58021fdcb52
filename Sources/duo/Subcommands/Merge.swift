import ArgumentParser
import Diffusion
import Formats
import Foundation

extension Duo {
    /// `duo merge`: a model folder with a LoRA fused into its UNet weights.
    struct Merge: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Fuse a LoRA adapter or UNet weights file into a model and write the result as a new model folder.",
            discussion: """
                A LoRA: W = W0 + scale x B A for every adapted layer. A UNet weights file (a \
                partial or whole diffusers UNet state_dict, as ESD and UCE write): \
                W = W0 + scale x (W_file - W0) for every parameter it holds. Several files \
                add their changes. A LoRA with text-encoder adapters (text_encoder.* keys) \
                is fused into the text encoder too. Every other file of the model folder is \
                copied as it is; the changed weights are written in float32. The folder is written beside its destination and renamed \
                into place.
                """)

        @OptionGroup var modelOption: ModelOption

        @Option(
            help:
                "The LoRA adapter or UNet weights file to fuse, as PATH or PATH@SCALE; repeat to fuse several."
        )
        var lora: [String]

        @Option(help: "Strength of a single --lora (default 1).")
        var loraScale: Float?

        @Option(help: "The new model folder.")
        var out: String

        func validate() throws {
            if let loraScale { try OptionCheck.finite(loraScale, "--lora-scale") }
        }

        func run() throws {
            let files = FileManager.default
            // "new/" names the folder "new"; left as it is, the staging folder beside it
            // would land inside it.
            let out = PathText.withoutTrailingSlash(self.out)
            guard !files.fileExists(atPath: out) else {
                throw UsageError("\(out) exists: give a new folder for the merged model")
            }
            let parent = PathText.parent(out)
            guard parent.isEmpty || files.fileExists(atPath: parent) else {
                throw UsageError("--out \(out): no folder \(parent) to write it in")
            }
            let source = try modelOption.directory()
            // Copied into a folder inside itself, the model would be copied again at each level.
            let (resolvedSource, resolvedOut) = (
                Self.resolved(source), Self.resolved(parent.isEmpty ? "." : parent)
            )
            guard resolvedOut != resolvedSource, !resolvedOut.hasPrefix(resolvedSource + "/") else {
                throw UsageError(
                    "--out \(out): inside the model folder \(source); give a folder outside it")
            }
            let unet = try UNet2DConditionModel.load(directory: source + "/unet")
            let textEncoder = try CLIPTextModel.load(directory: source + "/text_encoder")
            let adapters = try LoRAFile.load(
                try AdapterSpec.stack(lora, loraScale: loraScale), into: unet,
                textEncoder: textEncoder)
            let mergesTextEncoder = adapters.adaptsTextEncoder
            try adapters.merge(into: unet)
            let staging = out + ".tmp-\(getpid())"
            do {
                try files.copyItem(atPath: source, toPath: staging)
                try replaceWeights(
                    in: staging + "/unet", with: unet, as: "diffusion_pytorch_model.safetensors")
                if mergesTextEncoder {
                    // transformers v4's names (`text_model.`), which v5 also reads.
                    try replaceWeights(
                        in: staging + "/text_encoder", with: textEncoder, as: "model.safetensors",
                        prefix: "text_model.")
                }
                try files.moveItem(atPath: staging, toPath: out)
            } catch {
                try? files.removeItem(atPath: staging)
                throw UsageError(
                    "\(out): cannot write the merged model (\(FileProblem.reason(error)))")
            }
            print(out)
        }

        /// `path` absolute, with symbolic links resolved.
        static func resolved(_ path: String) -> String {
            URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
        }

        /// Writes `model`'s weights into `folder` as `file`, first dropping the folder's other
        /// weight files (fp16 variants), which would still hold the unmerged weights.
        func replaceWeights(
            in folder: String, with model: Layer, as file: String, prefix: String = ""
        ) throws {
            let files = FileManager.default
            for name in try files.contentsOfDirectory(atPath: folder)
            where name.hasSuffix(".safetensors") || name.hasSuffix(".bin") {
                try files.removeItem(atPath: folder + "/" + name)
            }
            try WeightLoading.save(
                model, to: folder + "/" + file, prefix: prefix, metadata: ["format": "pt"])
        }
    }
}
