import ArgumentParser
import Formats

extension Duo {
    /// `duo inspect PATH`: what a safetensors or PNG file holds.
    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show what a .safetensors or .png file holds.",
            discussion: """
                For safetensors: each tensor's name, dtype and shape, the metadata, and the \
                total parameter count. For PNG: size, channels, bit depth and color type. \
                The whole file is validated; a damaged one is reported on one line.
                """)

        @Argument(help: "The file to inspect.")
        var path: String

        func run() throws {
            print(try FileInspection.report(path: path), terminator: "")
        }
    }
}
