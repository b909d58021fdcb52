import Concepts
import Evaluation
import Foundation
import World

/// `duo eval`'s throughput on a world model: images generated, read by the detector and
/// scored, per minute, for the original model on a concept's attack sets and keep prompts
/// (16 prompts per set, one seed, 32 keep prompts; 50 steps, guidance 7.5). Everything an
/// evaluation does is in the time: sampling, PNG writing, detection, world FID.
func runEvaluationBenchmark(directory: String, concept path: String) {
    print("# evaluation: duo eval's work on \(path), original model (\(directory))")
    let folder = NSTemporaryDirectory() + "duo-bench-eval-\(getpid())"
    defer { try? FileManager.default.removeItem(atPath: folder) }
    do {
        let concept = try ConceptFile(contentsOf: path)
        var settings = EvaluationRun.Settings()
        settings.seeds = 1
        settings.promptsPerSet = 16
        settings.keepPrompts = 32
        let run = try EvaluationRun(
            modelDirectory: directory, concept: concept,
            candidates: [EvaluationRun.Candidate(label: "original", adapter: nil)],
            detector: try concept.makeDetector(builtins: WorldDetectors()),
            threshold: concept.detector.threshold, settings: settings, directory: folder,
            filler: WorldPrompts(),
            preservation: [
                WorldPreservation(
                    concept: concept, count: settings.keepPrompts, seed: settings.seed)
                    as PreservationMetric?,
                PixelSimilarity(),
            ].compactMap { $0 })
        var images = 0
        let start = Date()
        _ = try run.run { done, _ in images = done }
        let seconds = Date().timeIntervalSince(start)
        row(
            "duo eval, images per minute", Double(images) / seconds * 60, "images/min",
            "\(images) images in \(String(format: "%.1f", seconds)) s")
    } catch {
        print("error: \(error)")
        exit(1)
    }
}
