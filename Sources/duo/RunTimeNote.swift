import Diffusion
import Foundation

/// Before a long run on a large model (Stable Diffusion), one line on stderr saying how
/// long it will take on this machine: runs there take hours, and the progress line's ETA
/// comes only after the first step. Small models start at once, with no note.
enum RunTimeNote {
    /// `passes(estimate)` counts the run's UNet image-passes.
    static func announce(
        _ what: String, model: StableDiffusion, quiet: Bool, height: Int? = nil,
        width: Int? = nil, passes: () -> Int
    ) {
        guard !quiet, RunEstimate.isLarge(model) else { return }
        let estimate = RunEstimate.timed(model: model, height: height, width: width)
        FileHandle.standardError.write(
            Data("\(what): \(estimate.describe(passes: passes()))\n".utf8))
    }

    /// The same for a run that loads the model itself later: the model is loaded here only
    /// when its UNet weights are large enough (2 bytes a parameter at the least), and
    /// released before the run loads its own.
    static func announce(
        _ what: String, modelDirectory: String, quiet: Bool, passes: () -> Int
    ) throws {
        guard !quiet else { return }
        let folder = modelDirectory + "/unet"
        let files = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        let bytes =
            files.filter { $0.hasSuffix(".safetensors") }.compactMap {
                (try? FileManager.default.attributesOfItem(atPath: folder + "/" + $0))?[.size]
                    as? Int
            }.max() ?? 0
        guard bytes >= 2 * RunEstimate.largeUNetParameters else { return }
        let model = try StableDiffusion.load(directory: modelDirectory)
        announce(what, model: model, quiet: quiet, passes: passes)
    }
}
