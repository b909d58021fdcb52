import Diffusion
import Formats
import Foundation
import Tensor
import TestSupport
import XCTest

/// Gradients of a fixed loss with respect to every parameter of the text encoder and
/// UNet "a", against PyTorch's (tools/make_model_fixtures.py):
/// loss = mean((unet(sample, t, textEncoder(ids)) - target)^2).
final class GradientParityTests: XCTestCase {
    func testEveryParameterGradientMatchesPyTorch() throws {
        let models = ModelParityTests.models
        let reference = ModelParityTests.reference
        let tensor = ModelParityTests.tensor
        let encoder = try CLIPTextModel.load(directory: models + "/pipeline/text_encoder")
        let unet = try UNet2DConditionModel.load(directory: models + "/pipeline/unet")
        encoder.setTrainable(true)
        unet.setTrainable(true)
        let rows = try ModelParityTests.ids("text.input_ids")
        let prediction = unet(
            try tensor("unet_a.sample"), timesteps: try tensor("unet_a.timesteps").scalars,
            context: encoder(rows))
        let difference = prediction - (try tensor("grad.noise_target"))
        let loss = mean(difference * difference)
        // PyTorch sums in other orders: the mean of n squares by sum(n) of itself, and each
        // prediction (of RMS `scale`) by up to ρ through the encoder and UNet (Float32Rounding).
        let n = prediction.count
        let rho = Float32Rounding.network(weights: encoder.parameters + unet.parameters)
        let scale = (prediction.scalars.map { $0 * $0 }.reduce(0, +) / Float(n)).squareRoot()
        let expectedLoss = try tensor("grad.loss").item
        let tolerance =
            expectedLoss * Float32Rounding.sum(n)
            + Float32Rounding.meanSquare(expectedLoss, count: n, scale: scale, relative: rho)
        XCTAssertEqual(loss.item, expectedLoss, accuracy: tolerance)
        loss.backward()

        let parameters = scoped("text_encoder", encoder) + scoped("unet", unet)
        let expected = try parameters.map { try reference.floats("grad." + $0.0) }
        let largest = expected.map { $0.map(abs).max()! }.max()!
        var worst = (name: "", error: Float(0))
        for ((name, parameter), expected) in zip(parameters, expected) {
            let actual = try XCTUnwrap(parameter.grad, "\(name) got no gradient").scalars
            // Relative to the tensor's largest gradient, floored at 1e-5 of the largest of
            // all: the key projections' bias gradients are exactly 0 in exact arithmetic
            // (softmax ignores a shift shared by all keys), so both sides hold only
            // rounding noise (~1e-11) there.
            let scale = max(expected.map(abs).max()!, 1e-5 * largest)
            let error = zip(actual, expected).map { abs($0 - $1) }.max()! / scale
            if error > worst.error { worst = (name, error) }
        }
        print(
            "largest relative gradient difference: \(worst.error) in \(worst.name) over \(parameters.count) tensors"
        )
        XCTAssertLessThanOrEqual(worst.error, 1e-4, "gradient of \(worst.name)")
    }
}
