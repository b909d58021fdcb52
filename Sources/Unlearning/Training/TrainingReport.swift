import Diffusion
import Formats
import Foundation

/// What a finished (or stopped) run leaves beside its log: the adapter in diffusers' LoRA
/// format (or ESD's full-rank UNet weights), config.json with every setting and the inputs'
/// digests, and train.svg, the curves that show whether the run was healthy.
public enum TrainingReport {
    /// Writes adapter.safetensors and config.json into the trainer's folder.
    public static func writeAdapter(
        _ trainer: UnlearningTrainer, concept: String, extra: JSONFields = []
    ) throws {
        let fields: JSONFields =
            [("concept", .string(concept))] + trainer.settings.fields + trainer.identity + extra
        try LoRAFile.save(
            trainer.lora, to: trainer.directory + "/adapter.safetensors",
            metadata: loraMetadata(fields))
        try writeConfig(fields, resumedFrom: trainer.resumedFrom, directory: trainer.directory)
    }

    /// Writes ESD's weights and config.json into the trainer's folder; returns the weights'
    /// path: unet.safetensors (the trained UNet parameters' new values under diffusers'
    /// keys, which every --adapter and --lora option takes) or adapter.safetensors (LoRA).
    @discardableResult
    public static func writeESD(_ trainer: ESDTrainer, concept: String, extra: JSONFields = [])
        throws -> String
    {
        let fields: JSONFields =
            [("concept", .string(concept))] + trainer.settings.fields + trainer.identity + extra
        let path: String
        switch trainer.weights {
        case let lora as LoRASet:
            path = trainer.directory + "/adapter.safetensors"
            try LoRAFile.save(lora, to: path, metadata: loraMetadata(fields))
        default:
            path = trainer.directory + "/unet.safetensors"
            try UNetWeightsFile.save(
                trainer.weights.namedParameters, to: path, metadata: metadata(fields))
        }
        try writeConfig(fields, resumedFrom: trainer.resumedFrom, directory: trainer.directory)
        return path
    }

    static func metadata(_ fields: JSONFields) -> [String: String] {
        Dictionary(fields.map { ($0.key, $0.value.line) }, uniquingKeysWith: { a, _ in a })
    }

    static func loraMetadata(_ fields: JSONFields) -> [String: String] {
        metadata(fields).merging(["duo.note": "LoRA scale alpha/rank is folded into lora_B"]) {
            $1
        }
    }

    /// config.json: the settings and identity, and the run's history, which is not a
    /// setting (config.json only, so that the weights' bytes stay those of an uninterrupted
    /// run).
    static func writeConfig(_ fields: JSONFields, resumedFrom: Int?, directory: String) throws {
        let history: JSONFields = [
            ("resumed_from", resumedFrom.map { JSONValue.number($0) } ?? .null)
        ]
        try AtomicFile.write(
            JSONValue.object(fields + history).text(), to: directory + "/config.json")
    }

    /// train.svg from train.jsonl: the loss terms on the left; on the right DUO's implicit
    /// accuracy, or ESD's guidance cosine (1 at the start, towards −1 as the concept's
    /// guidance turns around).
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
            series("dspo", "DSPO term", "#ff7f0e"),
            series("mse_trained_unsafe", "MSE θ unsafe", "#d62728"),
            series("mse_reference_unsafe", "MSE ref unsafe", "#9467bd"),
        ].compactMap { $0 }
        var left = SVGLineChart(
            title: "\(title): loss", xLabel: "step", yLabel: "value", series: losses)
        left.width = 560
        let cosine = series("guidance_cosine", "cos(e_n - e_0, e_p - e_0)", "#2ca02c")
        var right =
            cosine.map {
                SVGLineChart(
                    title: "guidance cosine (erased: towards -1)", xLabel: "step",
                    yLabel: "cosine", series: [$0])
            }
            ?? SVGLineChart(
                title: "implicit accuracy (safe preferred)", xLabel: "step",
                yLabel: "share of pairs",
                series: [series("implicit_accuracy", "implicit acc.", "#2ca02c")].compactMap { $0 })
        right.width = 560
        right.yRange = cosine == nil ? 0...1 : -1...1
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
