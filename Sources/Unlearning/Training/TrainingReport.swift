import Diffusion
import Formats
import Foundation

/// What a finished (or stopped) run leaves beside its log: the adapter in diffusers' LoRA
/// format, config.json with every setting and the inputs' digests, and train.svg, the
/// curves that show whether the run was healthy.
public enum TrainingReport {
    /// Writes adapter.safetensors and config.json into the trainer's folder.
    public static func writeAdapter(
        _ trainer: UnlearningTrainer, concept: String, extra: JSONFields = []
    ) throws {
        let fields: JSONFields =
            [("concept", .string(concept))] + trainer.settings.fields + trainer.identity + extra
        // The run's history, not a setting: config.json only, so that the adapter's bytes
        // stay those of an uninterrupted run.
        let resumedFrom: JSONFields = [
            ("resumed_from", trainer.resumedFrom.map { JSONValue.number($0) } ?? .null)
        ]
        let json = JSONValue.object(fields + resumedFrom).text()
        var metadata = Dictionary(
            fields.map { ($0.key, $0.value.line) }, uniquingKeysWith: { a, _ in a })
        metadata["duo.note"] = "LoRA scale alpha/rank is folded into lora_B"
        try LoRAFile.save(
            trainer.lora, to: trainer.directory + "/adapter.safetensors", metadata: metadata)
        try AtomicFile.write(json, to: trainer.directory + "/config.json")
    }

    /// train.svg from train.jsonl: the loss terms on the left, implicit accuracy and the
    /// reward margin's sign on the right (DUO), or the two MSEs (ESD).
    public static func writePlot(directory: String, title: String) throws {
        let text = (try? String(contentsOfFile: directory + "/train.jsonl", encoding: .utf8)) ?? ""
        let rows = text.split(separator: "\n").compactMap { try? JSONParser.parse(Array($0.utf8)) }
        func series(_ key: String, _ name: String, _ color: String) -> SVGLineChart.Series? {
            let points = rows.compactMap { row -> (x: Double, y: Double)? in
                guard let step = row["step"]?.double, let value = row[key]?.double else {
                    return nil
                }
                return (step, value)
            }
            return points.isEmpty
                ? nil : SVGLineChart.Series(name: name, points: points, color: color)
        }
        let losses = [
            series("loss", "loss", "#1f77b4"), series("dpo", "DPO term", "#ff7f0e"),
            series("mse_trained_unsafe", "MSE θ unsafe", "#d62728"),
            series("mse_reference_unsafe", "MSE ref unsafe", "#9467bd"),
        ].compactMap { $0 }
        var left = SVGLineChart(
            title: "\(title): loss", xLabel: "step", yLabel: "value", series: losses)
        left.width = 560
        var right = SVGLineChart(
            title: "implicit accuracy (safe preferred)", xLabel: "step", yLabel: "share of pairs",
            series: [series("implicit_accuracy", "implicit acc.", "#2ca02c")].compactMap { $0 })
        right.width = 560
        right.yRange = 0...1
        let svg = """
            <svg xmlns="http://www.w3.org/2000/svg" width="1120" height="360" viewBox="0 0 1120 360">
            <svg x="0" y="0" width="560" height="360">\(body(left.svg))</svg>
            <svg x="560" y="0" width="560" height="360">\(body(right.svg))</svg>
            </svg>

            """
        try AtomicFile.write(svg, to: directory + "/train.svg")
    }

    /// The inside of an SVG document (drops its outer element, to nest it).
    private static func body(_ svg: String) -> String {
        guard let open = svg.range(of: ">"),
            let close = svg.range(of: "</svg>", options: .backwards)
        else { return svg }
        return String(svg[open.upperBound..<close.lowerBound])
    }
}
