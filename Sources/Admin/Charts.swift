import Foundation

/// Small line charts as inline SVG (no script, no CDN): the endpoints page's last hour.
enum Chart {
    struct Series {
        var name: String
        var color: String
        var values: [Double?]
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    /// A round ceiling for the y axis: 1, 2 or 5 times a power of ten, at least `minimum`.
    static func ceiling(_ value: Double, minimum: Double = 1) -> Double {
        let v = max(value, minimum)
        let power = pow(10, floor(log10(v)))
        return [1.0, 2, 5, 10].map { $0 * power }.first { $0 >= v } ?? v
    }

    static func format(_ v: Double) -> String {
        v >= 100 || v == v.rounded() ? String(Int(v.rounded())) : String(format: "%.1f", v)
    }

    /// One chart: `title` with each series' newest value, the series as lines over `times` (gaps where a
    /// value is missing), the y axis from 0 to a round ceiling, the first and last time below.
    static func svg(title: String, unit: String, times: [Date], series: [Series], width: Int = 330, height: Int = 110) -> String {
        let left = 40.0, right = 8.0, top = 24.0, bottom = 16.0
        let w = Double(width) - left - right, h = Double(height) - top - bottom
        let top_ = ceiling(series.flatMap { $0.values.compactMap { $0 } }.max() ?? 0)
        let n = max(times.count, 1)
        func x(_ i: Int) -> Double { left + (n == 1 ? w : w * Double(i) / Double(n - 1)) }
        func y(_ v: Double) -> Double { top + h - h * v / top_ }
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" viewBox=\"0 0 \(width) \(height)\" role=\"img\" aria-label=\"\(escape(title))\" class=\"chart\">"
        out += "<title>\(escape(title))</title>"
        var legend = "<text x=\"\(Int(left))\" y=\"14\" font-size=\"11\" fill=\"#1d2430\"><tspan font-weight=\"600\">\(escape(title))</tspan>"
        for s in series {
            let last = s.values.last.flatMap { $0 }.map { format($0) + unit } ?? "–"
            legend += "<tspan dx=\"8\" fill=\"\(s.color)\">\(escape(s.name)) \(escape(last))</tspan>"
        }
        out += legend + "</text>"
        out += "<line x1=\"\(left)\" y1=\"\(top + h)\" x2=\"\(left + w)\" y2=\"\(top + h)\" stroke=\"#e4e7ec\"/>"
        out += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left + w)\" y2=\"\(top)\" stroke=\"#f0f1f4\"/>"
        out += "<text x=\"\(left - 4)\" y=\"\(top + 4)\" font-size=\"10\" text-anchor=\"end\" fill=\"#667085\">\(format(top_))\(escape(unit))</text>"
        out += "<text x=\"\(left - 4)\" y=\"\(top + h)\" font-size=\"10\" text-anchor=\"end\" fill=\"#667085\">0</text>"
        let clock = DateFormatter()
        clock.dateFormat = "HH:mm:ss"
        clock.timeZone = TimeZone(identifier: "UTC")
        if let first = times.first, let last = times.last {
            out += "<text x=\"\(left)\" y=\"\(height - 3)\" font-size=\"10\" fill=\"#667085\">\(clock.string(from: first))</text>"
            out += "<text x=\"\(left + w)\" y=\"\(height - 3)\" font-size=\"10\" text-anchor=\"end\" fill=\"#667085\">\(clock.string(from: last)) UTC</text>"
        }
        for s in series {
            // Runs of known values, each a line (a single point a dot).
            var run: [(Double, Double)] = []
            func flush() {
                if run.count == 1 {
                    out += "<circle cx=\"\(run[0].0)\" cy=\"\(run[0].1)\" r=\"2\" fill=\"\(s.color)\"/>"
                } else if run.count > 1 {
                    let points = run.map { String(format: "%.1f,%.1f", $0.0, $0.1) }.joined(separator: " ")
                    out += "<polyline fill=\"none\" stroke=\"\(s.color)\" stroke-width=\"1.6\" points=\"\(points)\"/>"
                }
                run = []
            }
            for (i, v) in s.values.enumerated() {
                if let v { run.append((x(i), y(v))) } else { flush() }
            }
            flush()
        }
        return out + "</svg>"
    }
}
