import Foundation

/// A line chart as a self-contained SVG document: for training curves and report plots,
/// readable in any browser with no script or network.
public struct SVGLineChart {
    public struct Series {
        public var name: String
        public var points: [(x: Double, y: Double)]
        public var color: String

        public init(name: String, points: [(x: Double, y: Double)], color: String) {
            self.name = name
            self.points = points
            self.color = color
        }
    }

    public var title: String
    public var xLabel: String
    public var yLabel: String
    public var series: [Series]
    public var width = 640.0
    public var height = 360.0
    /// Draw markers instead of lines (scatter plots: one point per model).
    public var markersOnly = false
    /// Fixed y range; nil: the data's.
    public var yRange: ClosedRange<Double>?

    public init(title: String, xLabel: String, yLabel: String, series: [Series]) {
        self.title = title
        self.xLabel = xLabel
        self.yLabel = yLabel
        self.series = series
    }

    public var svg: String {
        let (left, right, top, bottom) = (64.0, 150.0, 36.0, 48.0)
        let all = series.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite }
        let xs = (all.map(\.x).min() ?? 0, all.map(\.x).max() ?? 1)
        let ys =
            yRange.map { ($0.lowerBound, $0.upperBound) } ?? (
                all.map(\.y).min() ?? 0, all.map(\.y).max() ?? 1
            )
        var (x0, x1) = xs.0 == xs.1 ? (xs.0 - 1, xs.1 + 1) : xs
        if markersOnly {
            // Markers sit inside the frame, not on it.
            let pad = (x1 - x0) * 0.1
            (x0, x1) = (x0 - pad, x1 + pad)
        }
        let (y0, y1) = ys.0 == ys.1 ? (ys.0 - 1, ys.1 + 1) : ys
        let plotW = width - left - right, plotH = height - top - bottom
        func px(_ x: Double) -> Double { left + (x - x0) / (x1 - x0) * plotW }
        func py(_ y: Double) -> Double { top + (1 - (y - y0) / (y1 - y0)) * plotH }
        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" \
            viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(Int(width / 2))" y="20" text-anchor="middle" font-size="14">\(escape(title))</text>

            """
        for i in 0...4 {
            let f4 = Double(i) / 4
            let y = y0 + f4 * (y1 - y0), x = x0 + f4 * (x1 - x0)
            out +=
                "<line x1=\"\(f(left))\" y1=\"\(f(py(y)))\" x2=\"\(f(left + plotW))\" y2=\"\(f(py(y)))\" stroke=\"#ddd\"/>\n"
            out +=
                "<text x=\"\(f(left - 6))\" y=\"\(f(py(y) + 4))\" text-anchor=\"end\">\(tick(y))</text>\n"
            out +=
                "<text x=\"\(f(px(x)))\" y=\"\(f(top + plotH + 16))\" text-anchor=\"middle\">\(tick(x))</text>\n"
        }
        out +=
            "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotW))\" height=\"\(f(plotH))\" fill=\"none\" stroke=\"#444\"/>\n"
        out +=
            "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(height - 10))\" text-anchor=\"middle\">\(escape(xLabel))</text>\n"
        out +=
            "<text transform=\"translate(16 \(f(top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\">\(escape(yLabel))</text>\n"
        for (i, s) in series.enumerated() {
            let points = s.points.filter { $0.x.isFinite && $0.y.isFinite }
            if markersOnly {
                for p in points {
                    out +=
                        "<circle cx=\"\(f(px(p.x)))\" cy=\"\(f(py(p.y)))\" r=\"6\" fill=\"\(s.color)\"/>\n"
                }
            } else if !points.isEmpty {
                let path = points.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " ")
                out +=
                    "<polyline fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"1.5\" points=\"\(path)\"/>\n"
            }
            let ly = top + 14 + Double(i) * 18
            out +=
                "<rect x=\"\(f(left + plotW + 12))\" y=\"\(f(ly - 9))\" width=\"12\" height=\"12\" fill=\"\(s.color)\"/>\n"
            out +=
                "<text x=\"\(f(left + plotW + 30))\" y=\"\(f(ly + 1))\">\(escape(s.name))</text>\n"
        }
        return out + "</svg>\n"
    }

    private func f(_ v: Double) -> String { String(format: "%.1f", v) }

    private func tick(_ v: Double) -> String {
        abs(v) >= 1000 || (abs(v) < 0.01 && v != 0)
            ? String(format: "%.2g", v) : String(format: "%.4g", v)
    }

    private func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(
            of: "<", with: "&lt;"
        )
        .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
