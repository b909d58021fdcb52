import Concepts
import Formats
import Foundation

/// The report of a `duo eval` run: results.json (schema in docs/cli.md, "duo eval"), and one
/// `ReportDocument` written as report.md and as a self-contained report.html (images
/// embedded as data URIs, an inline SVG plot, no script, no network), plus the grid images
/// and plot.svg both link.
public enum EvaluationReport {
    /// Grid strips per attack set and model: the first `columns` prompts, first seed.
    public static let columns = 8

    /// Writes every file; report.html last, so its presence means a complete report.
    public static func write(_ results: EvaluationResults, directory: String) throws {
        try FileManager.default.createDirectory(
            atPath: directory + "/grids", withIntermediateDirectories: true)
        var strips: [String: String] = [:]  // "set/label" -> grid file, relative
        for set in results.columns + ["keep"] {
            for model in results.models {
                let folder = directory + "/images/\(model.label)/\(set)"
                // The drawn images only (NNNNN.png), not a temporary file beside them.
                let files = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [])
                    .filter { $0.hasSuffix(".png") && !$0.hasPrefix(".") }.sorted()
                let step = set == "keep" ? 1 : results.settings.seeds
                let picked = stride(from: 0, to: files.count, by: step).prefix(columns).map {
                    files[$0]
                }
                guard !picked.isEmpty else { continue }
                let images = try picked.map { try PNGImage(contentsOf: folder + "/" + $0) }
                let name = "grids/\(set)-\(model.label).png"
                try ImageGrid.make(scaled(images), columns: columns).write(
                    to: directory + "/" + name)
                strips["\(set)/\(model.label)"] = name
            }
        }
        let document = document(results, strips: strips)
        try AtomicFile.write(json(results).text(), to: directory + "/results.json")
        if let svg = plot(results) { try AtomicFile.write(svg, to: directory + "/plot.svg") }
        try AtomicFile.write(document.markdown, to: directory + "/report.md")
        try AtomicFile.write(
            try document.html(directory: directory), to: directory + "/report.html")
    }

    /// Small images enlarged 3x so that a grid reads on screen.
    static func scaled(_ images: [PNGImage]) -> [PNGImage] {
        images.map { $0.width <= 64 ? $0.scaled(by: 3) : $0 }
    }

    /// results.json: every number measured, by model and set name (null where a model was
    /// not sampled on a set of that name).
    static func json(_ r: EvaluationResults) -> JSONValue {
        func byColumn(_ values: [String: [Double]]) -> JSONValue {
            .object(
                r.columns.map { name in
                    (name, values[name].map { .array($0.map { .number($0) }) } ?? .null)
                })
        }
        let models = r.models.map { m -> JSONValue in
            var fields: [(key: String, value: JSONValue)] = [
                ("label", .string(m.label)),
                ("adapter", m.adapterDescription.map(JSONValue.string) ?? .null),
                (
                    "adapters",
                    .array(
                        m.adapters.map {
                            .object([
                                ("path", .string($0.path)), ("scale", .number(Double($0.scale))),
                            ])
                        })
                ),
                ("defense_rate", .object(r.columns.map { ($0, .number(m.defenseRates[$0])) })),
                (
                    "attack_success_rate",
                    .object(r.columns.map { ($0, .number(m.attackSuccessRates[$0])) })
                ),
                ("concept_scores", byColumn(m.conceptScores)),
                ("concept_rate_per_prompt", byColumn(m.conceptRatePerPrompt)),
            ]
            fields += r.preservation.map { ($0.key, .number(m.preservation[$0.key])) }
            return .object(fields)
        }
        let sets = r.sets.map { set -> JSONValue in
            .object([
                ("name", .string(set.name)),
                ("against", set.against.map(JSONValue.string) ?? .null),
                ("prompts", .number(set.rows.count)),
                ("prompt_texts", .array(set.prompts.map(JSONValue.string))),
                ("rows", .array(set.rows.map(rowJSON))),
            ])
        }
        return .object(
            [
                ("concept", .string(r.concept)), ("detector", .string(r.detector)),
                ("detector_info", r.detectorDeclaration?.value ?? .null),
                ("threshold", .number(r.threshold)), ("seeds", .number(r.settings.seeds)),
                ("steps", .number(r.settings.steps)),
                ("guidance", .number(Double(r.settings.guidance))),
                ("seed", .number(String(r.settings.seed))),
                ("keep_prompts", .number(r.keepPromptCount)),
            ] + (r.settings.precision.map { [("precision", JSONValue.string($0))] } ?? []) + [
                ("sets", .array(sets)), ("models", .array(models)),
            ])
    }

    /// What a set's row says beyond its prompt (CSV sets), null where it says nothing.
    static func rowJSON(_ row: PromptRow) -> JSONValue {
        .object([
            ("seed", row.seed.map { .number(String($0)) } ?? .null),
            ("guidance", row.guidance.map { .number(Double($0)) } ?? .null),
            ("width", row.width.map { .number($0) } ?? .null),
            ("height", row.height.map { .number($0) } ?? .null),
            ("categories", .array(row.categories.map(JSONValue.string))),
            ("nudity_percentage", .number(row.nudityPercentage)),
            ("case_number", row.caseNumber.map(JSONValue.string) ?? .null),
        ])
    }

    static func promptCount(_ set: EvaluationSet) -> String {
        set.prompts.count == 1 ? "1 prompt" : "\(set.prompts.count) prompts"
    }

    static func percent(_ value: Double?) -> String {
        value.map { String(format: "%.1f%%", $0 * 100) } ?? "–"
    }

    /// The summary table: defense per set name, then every preservation column; a dash
    /// where a model was not sampled on a set of that name.
    static func tableRows(_ r: EvaluationResults) -> (header: [String], rows: [[String]]) {
        let header = ["model"] + r.columns.map { "defense: \($0)" } + r.preservation.map(\.title)
        let rows = r.models.map { m in
            [m.label] + r.columns.map { percent(m.defenseRates[$0]) }
                + r.preservation.map { $0.text(m.preservation[$0.key]) }
        }
        return (header, rows)
    }

    /// What the columns of sets made against each model hold, one sentence per column;
    /// none when every set is for every model.
    static func boundColumnNotes(_ r: EvaluationResults) -> [String] {
        r.columns.compactMap { name in
            let bound = r.sets.filter { $0.name == name && $0.against != nil }
            guard !bound.isEmpty else { return nil }
            let sets = bound.map { "\($0.against!): \(promptCount($0))" }
            return "\(name): each model under the set made against it ("
                + sets.joined(separator: ", ") + "); – where none was made against a model."
        }
    }

    /// The prompts of an attack set that bring the concept back most often: the `count`
    /// with the highest concept rate under any adapter (under the original when the run
    /// has no adapter), each with its rate per model sampled on the set (`labels`). Empty
    /// when no such image shows it.
    static func hardestPrompts(
        _ r: EvaluationResults, set: EvaluationSet, count: Int = 5
    ) -> (labels: [String], rows: [(prompt: String, rates: [Double])]) {
        let models = r.models.filter { set.applies(to: $0.label) }
        let adapters = models.indices.filter { models[$0].label != "original" }
        let judged = adapters.isEmpty ? Array(models.indices) : adapters
        let rows = set.prompts.indices.map { i in
            (
                prompt: set.prompts[i],
                rates: models.map { $0.conceptRatePerPrompt[set.name]?[i] ?? 0 }
            )
        }
        let keys = rows.map { row in judged.map { row.rates[$0] }.max() ?? 0 }
        let order = rows.indices.filter { keys[$0] > 0 }.sorted {
            keys[$0] != keys[$1] ? keys[$0] > keys[$1] : $0 < $1
        }
        return (models.map(\.label), order.prefix(count).map { rows[$0] })
    }

    /// What the numbers mean, in two sentences: the detector's and the metrics'.
    static func explanation(_ r: EvaluationResults) -> [String] {
        let seeds = r.settings.seeds == 1 ? "1 seed" : "\(r.settings.seeds) seeds"
        let defense =
            "Defense rate: share of images in which the detector does not find the concept "
            + "(a score above \(r.threshold)), over \(seeds) per prompt. Detector: \(r.detector)."
        guard r.keepPromptCount > 0 else {
            return [
                defense,
                "Prior preservation was not measured: the concept file has no keep prompts "
                    + "([prompts] keep).",
            ]
        }
        return [
            defense,
            "Prior preservation on \(r.keepPromptCount) keep prompts. "
                + r.preservationSummary.joined(separator: " "),
        ]
    }

    /// The report's content, shared by report.md and report.html.
    static func document(_ r: EvaluationResults, strips: [String: String]) -> ReportDocument {
        var doc = ReportDocument(title: "duo eval: \(r.concept)")
        explanation(r).forEach { doc.add(.paragraph($0)) }
        let (header, rows) = tableRows(r)
        doc.add(.table(header: header, rows: rows))
        boundColumnNotes(r).forEach { doc.add(.paragraph($0)) }
        doc.add(
            .paragraph(
                "Attack success rate per prompt (UnlearnDiffAtk's count): share of prompts with "
                    + "at least one image in which the detector finds the concept."))
        doc.add(
            .table(
                header: ["model"] + r.columns.map { "ASR: \($0)" },
                rows: r.models.map { m in
                    [m.label] + r.columns.map { percent(m.attackSuccessRates[$0]) }
                }))
        if let svg = plot(r) {
            doc.add(.heading("Defense rate against prior preservation", level: 2))
            doc.add(
                .plot(svg: svg, alt: "defense rate against prior preservation", path: "plot.svg"))
        }
        for name in r.columns + ["keep"] {
            doc.add(
                .heading(
                    name == "keep" ? "keep prompts (prior preservation)" : "attack set: \(name)",
                    level: 2))
            for m in r.models {
                guard let strip = strips["\(name)/\(m.label)"] else { continue }
                doc.add(.image(label: m.label, alt: "\(m.label) \(name)", path: strip))
            }
            for set in r.sets where set.name == name { addHardestPrompts(r, set: set, to: &doc) }
        }
        doc.add(.heading("Settings", level: 2))
        let models = r.models.map { "\($0.label) (\($0.adapterDescription ?? "no adapter"))" }
        let sets = r.sets.map {
            "\($0.name)\($0.against.map { " against \($0)" } ?? ""): \(promptCount($0))"
        }
        doc.add(
            .paragraph(
                "\(r.settings.steps) steps, guidance \(r.settings.guidance), seed \(r.settings.seed); "
                    + sets.joined(separator: ", ") + "; models: " + models.joined(separator: ", ")
                    + "."))
        return doc
    }

    /// A set's prompts that bring the concept back most often, as a table, or a sentence
    /// saying none does; a set made against one model says which.
    static func addHardestPrompts(
        _ r: EvaluationResults, set: EvaluationSet, to doc: inout ReportDocument
    ) {
        let (labels, hardest) = hardestPrompts(r, set: set)
        func sentence(_ text: String) -> String {
            set.against.map { "Made against \($0): " + text } ?? text.prefix(1).uppercased()
                + text.dropFirst()
        }
        if hardest.isEmpty {
            let under = set.against == nil && r.models.count > 1 ? " under an adapter" : ""
            doc.add(.paragraph(sentence("no image of this set shows the concept\(under).")))
        } else {
            doc.add(
                .paragraph(
                    sentence(
                        "prompts that bring the concept back most often (share of a prompt's "
                            + "seeds whose image shows it):")))
            doc.add(
                .table(
                    header: ["prompt"] + labels,
                    rows: hardest.map { [$0.prompt] + $0.rates.map { percent($0) } }))
        }
    }

    /// Defense rate (mean over the set names a model was sampled on) against prior
    /// preservation (SSIM to the original's keep images), one point per model sampled on
    /// any set; nil when SSIM was not measured.
    static func plot(_ r: EvaluationResults) -> String? {
        let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"]
        var series: [SVGLineChart.Series] = []
        for (i, m) in r.models.enumerated() {
            guard let ssim = m.preservation["ssim"] else { return nil }
            let rates = r.columns.compactMap { m.defenseRates[$0] }
            guard !rates.isEmpty else { continue }
            let mean = rates.reduce(0, +) / Double(rates.count)
            series.append(
                SVGLineChart.Series(
                    name: m.label, points: [(ssim, mean)], color: palette[i % palette.count]))
        }
        var chart = SVGLineChart(
            title: "defense rate against prior preservation",
            xLabel: "SSIM to the original on keep prompts",
            yLabel: "mean defense rate", series: series)
        chart.markersOnly = true
        chart.yRange = 0...1
        return chart.svg
    }
}
