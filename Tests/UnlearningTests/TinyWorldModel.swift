import Diffusion
import Foundation
import World
import TestSupport

/// An embedded-architecture model after one training step: the real shapes (32x32 world
/// images, the world's tokenizer) at almost no cost, made once per test process.
enum TinyWorldModel {
    static let directory: String = {
        let root = scratchFolder("duo-tiny-world")
        var parameters = Pretraining.Parameters()
        parameters.steps = 1
        parameters.batchSize = 2
        try! Pretraining.train(directory: root, parameters: parameters, resume: false)
        return root + "/model"
    }()

    static let model: StableDiffusion = try! StableDiffusion.load(directory: directory)
}
