import Formats
import Foundation

/// What one optimizer step of a trainer reports (DUO's or ESD's).
public struct TrainingStepLog {
    public var step: Int
    public var terms: [(String, Float)]
    public var seconds: Double

    public init(step: Int, terms: [(String, Float)], seconds: Double) {
        self.step = step
        self.terms = terms
        self.seconds = seconds
    }

    /// The value logged under `key`, NaN when there is none.
    public func value(_ key: String) -> Float { terms.first { $0.0 == key }?.1 ?? .nan }
}

/// train.jsonl of a run folder: one JSON object per step, appended as the run goes.
struct TrainingLog {
    let path: String

    /// Keeps the lines of steps ≤ `step` (a resumed run rewrites what came after).
    func truncate(toStep step: Int) throws {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        let kept = text.split(separator: "\n").prefix(step).map { $0 + "\n" }.joined()
        try AtomicFile.write(kept, to: path)
    }

    func append(_ log: TrainingStepLog) throws {
        let line = JSONValue.object(
            [("step", .number(log.step))]
                + log.terms.map { ($0.0, JSONValue.number(Double($0.1), format: "%.7g")) }
                + [("seconds", .number(log.seconds, format: "%.4f"))])
        try AppendFile.append(line.line + "\n", to: path)
    }

    /// Stops a run at the first NaN or infinity among `values` (logged values, or one per
    /// parameter), before anything of the step is written: a diverged model is never
    /// saved, and the last checkpoint stays the last good one. `loraScale` (alpha / rank) is
    /// named beside the learning rate when it is not 1: it multiplies every update's effect.
    static func checkFinite(
        _ values: [(String, Float)], step: Int, lastCheckpoint: Int, learningRate: Float,
        loraScale: Float = 1
    ) throws {
        guard let (name, value) = values.first(where: { !$0.1.isFinite }) else { return }
        let kept =
            lastCheckpoint > 0
            ? "the checkpoint of step \(lastCheckpoint) is kept" : "no checkpoint was written"
        let scale = loraScale == 1 ? "" : ", or the LoRA scale alpha/rank, now \(loraScale)"
        throw UnlearningError(
            "step \(step): \(name) is \(value) (training diverged; lower the learning rate, now "
                + "\(learningRate)\(scale)); \(kept)")
    }
}
