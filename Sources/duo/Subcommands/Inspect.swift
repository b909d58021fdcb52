import ArgumentParser
import Diffusion
import Foundation
import Formats

extension Duo {
    /// `duo inspect PATH`: what a safetensors file, a PNG or a model folder holds.
    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show what a .safetensors file, a .png or a model folder holds.",
            discussion: """
                For safetensors: each tensor's name, dtype and shape, the metadata, and the \
                total parameter count. For PNG: size, channels, bit depth and color type. \
                For a diffusers model folder: its components with their classes, weights \
                files, parameter counts and dtypes. A damaged file is reported on one line.
                """)

        @Argument(help: "The file or model folder to inspect.")
        var path: String

        func run() throws {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory),
                isDirectory.boolValue
            {
                print(try ModelFolderSummary.report(directory: path), terminator: "")
            } else {
                print(try FileInspection.report(path: path), terminator: "")
            }
        }
    }
}
