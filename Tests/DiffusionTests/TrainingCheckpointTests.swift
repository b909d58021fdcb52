import Diffusion
import Foundation
import Tensor
import XCTest

final class TrainingCheckpointTests: XCTestCase {
    /// A small model and its optimizer, trained `steps` steps on a fixed regression task.
    private final class Run {
        let layer = Linear(4, 3, key: RandomKey(seed: 1))
        lazy var optimizer = AdamW(parameters: layer.parameters)
        init() { layer.setTrainable(true) }

        func train(steps: Range<Int>) {
            for step in steps {
                let x = Tensor.randn([8, 4], key: RandomKey(seed: 2).fold(in: UInt64(step)))
                let y = layer(x) - 1
                optimizer.zeroGrad()
                mean(y * y).backward()
                optimizer.update(learningRate: 0.01)
            }
        }
    }

    func testResumingFromACheckpointContinuesBitForBit() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "ckpt-\(UUID()).safetensors"
        ).path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let straight = Run()
        straight.train(steps: 0..<10)

        let first = Run()
        first.train(steps: 0..<5)
        try TrainingCheckpoint.save(
            to: path, parameters: first.layer.namedParameters, optimizer: first.optimizer,
            step: 5, metadata: ["seed": "2"])
        let resumed = Run()
        let (step, metadata) = try TrainingCheckpoint.load(
            from: path, parameters: resumed.layer.namedParameters,
            optimizer: resumed.optimizer)
        XCTAssertEqual(step, 5)
        XCTAssertEqual(metadata, ["seed": "2"])
        XCTAssertEqual(resumed.optimizer.step, 5)
        resumed.train(steps: 5..<10)
        XCTAssertEqual(
            resumed.layer.parameters.map { $0.scalars.map(\.bitPattern) },
            straight.layer.parameters.map { $0.scalars.map(\.bitPattern) })
    }

    func testAFileWithoutStepIsAOneLineError() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "weights-\(UUID()).safetensors"
        ).path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let run = Run()
        try WeightLoading.save(run.layer, to: path)
        XCTAssertThrowsError(
            try TrainingCheckpoint.load(
                from: path, parameters: run.layer.namedParameters,
                optimizer: run.optimizer)
        ) { error in
            XCTAssertTrue("\(error)".contains(path) && "\(error)".contains("step"), "\(error)")
        }
    }
}
