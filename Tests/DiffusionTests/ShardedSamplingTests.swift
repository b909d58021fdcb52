import Diffusion
import Foundation
import Tensor
import TestSupport
import XCTest

/// A batch is sampled as shards on separate threads; each image must still be the one its
/// prompt and key give alone (its own step noise, its own text states).
final class ShardedSamplingTests: XCTestCase {
    func testEachImageOfAShardedBatchIsTheImageSampledAlone() throws {
        let model = try StableDiffusion.load(directory: ModelParityTests.models + "/pipeline")
        let requests = [
            TextToImage.Request(prompt: "a red circle", key: RandomKey(seed: 1)),
            TextToImage.Request(
                prompt: "two blue squares", negativePrompt: "green", key: RandomKey(seed: 2)),
            TextToImage.Request(prompt: "a yellow cross", key: RandomKey(seed: 3)),
        ]
        // DDPM: every step draws noise per image, so a shard given another's keys differs.
        let batch = try TextToImage.sample(
            model: model, requests: requests, steps: 4, scheduler: .ddpm)
        for (i, request) in requests.enumerated() {
            let alone = try TextToImage.sample(
                model: model, requests: [request], steps: 4, scheduler: .ddpm)
            assertClose(
                batch.slice(batch: i).scalars, alone.scalars, rtol: 1e-4, atol: 1e-4, "image \(i)")
        }
    }
}
