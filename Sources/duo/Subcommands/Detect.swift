import ArgumentParser
import Foundation
import World

extension Duo {
    /// `duo world detect`: the built-in world detectors, speaking the external detector protocol.
    struct Detect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Score PNG images with the built-in world detectors.",
            discussion: """
                Prints one JSON line per image: {"path": P, "scores": {CONCEPT: p, ...}, \
                "shape": S, "colour": C}, the line protocol an external detector speaks. An \
                unreadable image gets a one-line error on stderr instead, and the command \
                exits non-zero after scoring the others. The path - reads paths from stdin, \
                one per line, answering each at once (a detector process for --detector \
                and concept files; an unreadable image then ends it). With --train-to it \
                instead trains the detectors from scratch on world images and writes their \
                weights.
                """)

        @Option(
            name: .customLong("concept"),
            help: "A concept to score (repeatable; default: all of \(Self.conceptNames)).")
        var concepts: [String] = []

        @Option(help: "Detector weights (.safetensors; default: the shipped ones).")
        var weights: String?

        @Option(help: "Train the detectors and write their weights to this .safetensors file.")
        var trainTo: String?

        @Option(help: "Training steps (with --train-to).")
        var steps = DetectorTraining.Parameters().steps

        @Option(help: "Training seed (with --train-to).")
        var seed = DetectorTraining.Parameters().seed

        @Argument(help: "PNG images (32x32 world images); - reads paths from stdin.")
        var paths: [String] = []

        static var conceptNames: String { Concept.allCases.map(\.rawValue).joined(separator: ", ") }

        func validate() throws {
            for name in concepts where Concept(rawValue: name) == nil {
                throw UsageError("unknown concept '\(name)'; known: \(Self.conceptNames)")
            }
            guard (trainTo == nil) != paths.isEmpty else {
                throw UsageError(
                    "give PNG paths to score, or --train-to FILE to train (not both)")
            }
            guard steps >= 1 else { throw UsageError("--steps must be at least 1") }
            if let trainTo {
                try OptionCheck.writableFile(trainTo, "--train-to")
            }
        }

        func run() throws {
            if let trainTo { return try train(to: trainTo) }
            let detector = try weights.map(WorldDetector.load(from:)) ?? WorldDetector.shipped()
            let selected = concepts.isEmpty ? Concept.allCases : concepts.compactMap(Concept.init)
            if paths == ["-"] { return try serve(detector, selected) }
            var failed = false
            for path in paths {
                do {
                    let image = try WorldDetector.image(contentsOf: path)
                    let prediction = detector.predict(images: [image])[0]
                    print(prediction.jsonLine(path: path, concepts: selected))
                } catch {
                    failed = true
                    // Format errors already name the file; others get it here.
                    let message = "\(error)".contains(path) ? "\(error)" : "\(path): \(error)"
                    FileHandle.standardError.write(Data("duo world detect: \(message)\n".utf8))
                }
            }
            if failed { throw ExitCode.failure }
        }

        /// The line protocol as a long-lived process: a path in, a JSON line out, flushed.
        private func serve(_ detector: WorldDetector, _ selected: [Concept]) throws {
            while let line = readLine() {
                let path = line.trimmingCharacters(in: .whitespaces)
                if path.isEmpty { continue }
                let image = try WorldDetector.image(contentsOf: path)
                print(detector.predict(images: [image])[0].jsonLine(path: path, concepts: selected))
                fflush(stdout)
            }
        }

        private func train(to path: String) throws {
            try OptionCheck.replaceableSafeTensors(
                path, "--train-to", marks: Array(DetectorTraining.Parameters().metadata.keys))
            var parameters = DetectorTraining.Parameters()
            parameters.steps = steps
            parameters.seed = seed
            let bar = ProgressLine("training detectors")
            let detector = DetectorTraining.train(parameters: parameters) { event in
                if case .step(let step, let total, let loss) = event {
                    bar.update(step, of: total, detail: String(format: "loss %.4f", loss))
                }
                return true
            }
            try detector.save(to: path, metadata: parameters.metadata)
            let accuracy = DetectorTraining.evaluate(detector, count: 2000)
            let concepts = Concept.allCases.map {
                String(format: "%@ %.4f", $0.rawValue, accuracy.concepts[$0]!)
            }
            bar.note(
                "wrote \(path); held-out accuracy on \(accuracy.count) images: "
                    + concepts.joined(separator: ", ")
                    + String(format: ", shape %.4f, colour %.4f", accuracy.shape, accuracy.colour))
        }
    }
}
