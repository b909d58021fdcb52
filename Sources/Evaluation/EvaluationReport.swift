import Formats
import Foundation

/// The report of a `duo eval` run: results.json (schema in docs/cli.md, "duo eval"), report.md and a
/// self-contained report.html (images embedded as data URIs, an inline SVG plot, no
/// script, no network), plus the grid images both link.
public enum EvaluationReport {
    /// Grid strips per attack set and model: the first `columns` prompts, first seed.
    public static let columns = 8

    /// Writes every file; report.html last, so its presence means a complete report.
    public static func write(_ results: EvaluationResults, directory: String) throws {
        try FileManager.default.createDirectory(
            atPath: directory + "/grids", withIntermediateDirectories: true)
        var strips: [String: String] = [:]  // "set/label" -> grid file, relative
        for set in results.sets.map(\.name) + ["keep"] {
            for model in results.models {
                let folder = directory + "/images/\(model.label)/\(set)"
                let files = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [])
                    .sorted()
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
        try AtomicFile.write(json(results), to: directory + "/results.json")
        try AtomicFile.write(markdown(results, strips: strips), to: directory + "/report.md")
        try AtomicFile.write(
            html(results, strips: strips, directory: directory), to: directory + "/report.html")
    }

    /// Small images enlarged 3x so that a grid reads on screen.
    static func scaled(_ images: [PNGImage]) -> [PNGImage] {
        images.map { $0.width <= 64 ? $0.scaled(by: 3) : $0 }
    }

    static func number(_ value: Double?) -> String {
        guard let value, value.isFinite else { return "null" }
        return String(format: "%.6g", value)
    }

    static func json(_ r: EvaluationResults) -> String {
        let models = r.models.map { m -> String in
            let rates = r.sets.map { "\(jsonQuoted($0.name)): \(number(m.defenseRates[$0.name]))" }
                .joined(separator: ", ")
            let perPrompt = r.sets.map { set in
                "\(jsonQuoted(set.name)): ["
                    + (m.conceptRatePerPrompt[set.name] ?? []).map(number).joined(separator: ", ")
                    + "]"
            }.joined(separator: ", ")
            let fields = [
                "\"label\": \(jsonQuoted(m.label))",
                "\"adapter\": \(m.adapter.map(jsonQuoted) ?? "null")",
                "\"defense_rate\": {\(rates)}", "\"concept_rate_per_prompt\": {\(perPrompt)}",
                "\"faithfulness\": \(number(m.faithfulness))",
                "\"fid\": \(number(m.fid))", "\"fid_to_original\": \(number(m.fidToOriginal))",
                "\"feature_distance\": \(number(m.featureDistance))", "\"ssim\": \(number(m.ssim))",
                "\"psnr\": \(number(m.psnr))",
            ]
            return "    {" + fields.joined(separator: ", ") + "}"
        }
        let sets = r.sets.map {
            "{\"name\": \(jsonQuoted($0.name)), \"prompts\": \($0.prompts.count), \"prompt_texts\": [\($0.prompts.map(jsonQuoted).joined(separator: ", "))]}"
        }.joined(separator: ", ")
        return """
            {
              "concept": \(jsonQuoted(r.concept)),
              "detector": \(jsonQuoted(r.detector)),
              "threshold": \(number(r.threshold)),
              "seeds": \(r.settings.seeds), "steps": \(r.settings.steps), "guidance": \(number(Double(r.settings.guidance))), "seed": \(r.settings.seed),
              "sets": [\(sets)],
              "models": [
            \(models.joined(separator: ",\n"))
              ]
            }

            """
    }

    static func percent(_ value: Double?) -> String {
        value.map { String(format: "%.1f%%", $0 * 100) } ?? "–"
    }

    static func tableRows(_ r: EvaluationResults) -> (header: [String], rows: [[String]]) {
        let header =
            ["model"] + r.sets.map { "defense: \($0.name)" } + [
                "faithfulness", "world FID", "FID to original", "SSIM", "PSNR",
            ]
        let rows = r.models.map { m in
            [m.label] + r.sets.map { percent(m.defenseRates[$0.name]) }
                + [
                    percent(m.faithfulness), m.fid.map { String(format: "%.2f", $0) } ?? "–",
                    m.fidToOriginal.map { String(format: "%.2f", $0) } ?? "–",
                    String(format: "%.3f", m.ssim),
                    String(format: "%.1f dB", m.psnr),
                ]
        }
        return (header, rows)
    }

    /// The prompts of an attack set that bring the concept back most often: the `count`
    /// with the highest concept rate under any adapter (under the original when the run
    /// has no adapter), each with its rate per model. Empty when no such image shows it.
    static func hardestPrompts(
        _ r: EvaluationResults, set: (name: String, prompts: [String]), count: Int = 5
    )
        -> [(prompt: String, rates: [Double])]
    {
        let adapters = r.models.indices.filter { r.models[$0].label != "original" }
        let judged = adapters.isEmpty ? Array(r.models.indices) : adapters
        let rows = set.prompts.indices.map { i in
            (
                prompt: set.prompts[i],
                rates: r.models.map { $0.conceptRatePerPrompt[set.name]?[i] ?? 0 }
            )
        }
        let keys = rows.map { row in judged.map { row.rates[$0] }.max() ?? 0 }
        let order = rows.indices.filter { keys[$0] > 0 }.sorted {
            keys[$0] != keys[$1] ? keys[$0] > keys[$1] : $0 < $1
        }
        return order.prefix(count).map { rows[$0] }
    }

    static let hardestCaption =
        "Prompts that bring the concept back most often (share of a prompt's seeds whose image shows it)"

    static func hardestMarkdown(_ r: EvaluationResults, set: (name: String, prompts: [String]))
        -> String
    {
        let rows = hardestPrompts(r, set: set)
        guard !rows.isEmpty else {
            return
                "No image of this set shows the concept\(r.models.count > 1 ? " under an adapter" : "").\n\n"
        }
        var text =
            "\(hardestCaption):\n\n| prompt | " + r.models.map(\.label).joined(separator: " | ")
            + " |\n"
        text += "|---|" + r.models.map { _ in "---" }.joined(separator: "|") + "|\n"
        for row in rows {
            text +=
                "| \(row.prompt.replacingOccurrences(of: "|", with: "\\|")) | "
                + row.rates.map { percent($0) }.joined(separator: " | ") + " |\n"
        }
        return text + "\n"
    }

    static func markdown(_ r: EvaluationResults, strips: [String: String]) -> String {
        let (header, rows) = tableRows(r)
        var text = "# duo eval: \(r.concept)\n\n"
        text +=
            "Defense rate: share of images in which the detector (`\(r.detector)`, threshold \(r.threshold)) does not find the concept, over \(r.settings.seeds) seeds per prompt. Prior preservation on \(r.settings.keepPrompts) keep prompts: faithfulness (shape and colour as prompted, world detector), world FID to real world images and to the original's images, SSIM and PSNR to the original's image for the same prompt and noise. No LPIPS weights can be had offline: the world feature network stands in for the perceptual distance (`feature_distance` in results.json).\n\n"
        text +=
            "| " + header.joined(separator: " | ") + " |\n|"
            + header.map { _ in "---" }.joined(separator: "|") + "|\n"
        text += rows.map { "| " + $0.joined(separator: " | ") + " |\n" }.joined()
        text += "\n![defense rate against prior preservation](plot.svg)\n"
        for set in r.sets.map(\.name) + ["keep"] {
            text += "\n## \(set)\n\n"
            for m in r.models {
                if let strip = strips["\(set)/\(m.label)"] {
                    text += "\(m.label): ![\(m.label) \(set)](\(strip))\n\n"
                }
            }
            if let attack = r.sets.first(where: { $0.name == set }) {
                text += hardestMarkdown(r, set: attack)
            }
        }
        text +=
            "\nSettings: \(r.settings.steps) steps, guidance \(r.settings.guidance), seed \(r.settings.seed), "
            + r.sets.map { "\($0.name) \($0.prompts.count) prompts" }.joined(separator: ", ")
            + ".\n"
        return text
    }

    /// Defense rate (mean over the sets) against prior preservation (SSIM to the original's
    /// keep images), one point per model.
    static func plot(_ r: EvaluationResults) -> String {
        let palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"]
        let series = r.models.enumerated().map { i, m in
            let mean =
                r.sets.map { m.defenseRates[$0.name] ?? 0 }.reduce(0, +)
                / Double(max(1, r.sets.count))
            return SVGLineChart.Series(
                name: m.label, points: [(m.ssim, mean)], color: palette[i % palette.count])
        }
        var chart = SVGLineChart(
            title: "defense rate against prior preservation",
            xLabel: "SSIM to the original on keep prompts",
            yLabel: "mean defense rate", series: series)
        chart.markersOnly = true
        chart.yRange = 0...1
        return chart.svg
    }

    static func html(_ r: EvaluationResults, strips: [String: String], directory: String) throws
        -> String
    {
        func escape(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(
                of: "<", with: "&lt;"
            ).replacingOccurrences(of: ">", with: "&gt;")
        }
        let svg = plot(r)
        try AtomicFile.write(svg, to: directory + "/plot.svg")
        let (header, rows) = tableRows(r)
        var body = "<h1>duo eval: \(escape(r.concept))</h1>\n"
        body +=
            "<p>Defense rate: share of images in which the detector (<code>\(escape(r.detector))</code>, threshold \(r.threshold)) does not find the concept, \(r.settings.seeds) seeds per prompt. Prior preservation on \(r.settings.keepPrompts) keep prompts. No LPIPS weights can be had offline: the world feature network's distance and SSIM/PSNR stand in for it.</p>\n"
        body += "<table><tr>" + header.map { "<th>\(escape($0))</th>" }.joined() + "</tr>\n"
        body +=
            rows.map { "<tr>" + $0.map { "<td>\(escape($0))</td>" }.joined() + "</tr>\n" }.joined()
            + "</table>\n"
        body += "<h2>Defense rate against prior preservation</h2>\n" + svg
        for set in r.sets.map(\.name) + ["keep"] {
            body +=
                "<h2>\(escape(set == "keep" ? "keep prompts (prior preservation)" : "attack set: " + set))</h2>\n<table class=\"grid\">\n"
            for m in r.models {
                guard let strip = strips["\(set)/\(m.label)"] else { continue }
                let data = try Data(contentsOf: URL(fileURLWithPath: directory + "/" + strip))
                    .base64EncodedString()
                body +=
                    "<tr><th>\(escape(m.label))</th><td><img alt=\"\(escape(m.label)) \(escape(set))\" src=\"data:image/png;base64,\(data)\"></td></tr>\n"
            }
            body += "</table>\n"
            guard let attack = r.sets.first(where: { $0.name == set }) else { continue }
            let hardest = hardestPrompts(r, set: attack)
            if hardest.isEmpty {
                body +=
                    "<p>No image of this set shows the concept\(r.models.count > 1 ? " under an adapter" : "").</p>\n"
            } else {
                body +=
                    "<p>\(hardestCaption):</p>\n<table><tr><th>prompt</th>"
                    + r.models.map { "<th>\(escape($0.label))</th>" }.joined() + "</tr>\n"
                body +=
                    hardest.map { row in
                        "<tr><td>\(escape(row.prompt))</td>"
                            + row.rates.map { "<td>\(percent($0))</td>" }.joined() + "</tr>\n"
                    }.joined() + "</table>\n"
            }
        }
        body +=
            "<h2>Settings</h2><p>\(r.settings.steps) steps, guidance \(r.settings.guidance), seed \(r.settings.seed); "
            + r.sets.map { "\(escape($0.name)): \($0.prompts.count) prompts" }.joined(
                separator: ", ") + "; models: "
            + r.models.map { "\(escape($0.label)) (\(escape($0.adapter ?? "no adapter")))" }.joined(
                separator: ", ") + ".</p>\n"
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><title>duo eval: \(escape(r.concept))</title>
            <style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
            table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
            table.grid td,table.grid th{border:none}img{image-rendering:pixelated}</style></head>
            <body>
            \(body)</body></html>

            """
    }
}
