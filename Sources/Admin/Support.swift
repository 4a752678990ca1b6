import Foundation
import Hummingbird
import NIOCore

/// An `application/x-www-form-urlencoded` body: every field in order (a name may repeat: `ids`).
struct Form: Sendable {
    var fields: [(String, String)]

    func first(_ name: String) -> String? { fields.first { $0.0 == name }?.1 }
    func all(_ name: String) -> [String] { fields.filter { $0.0 == name }.map(\.1) }

    /// Reads the body once and leaves it buffered in the request, so that a later reader sees it too.
    static func read(_ request: inout Request, context: AdminContext) async throws -> Form {
        let buffer = try await request.collectBody(upTo: context.maxUploadSize)
        return parse(String(buffer: buffer))
    }

    static func parse(_ text: String) -> Form {
        Form(fields: text.split(separator: "&", omittingEmptySubsequences: true).map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ s: Substring) -> String {
                String(s).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(s)
            }
            return (decode(parts[0]), parts.count > 1 ? decode(parts[1]) : "")
        })
    }
}

/// An error an operator can act on: JSON for the API (`{"error": {"status", "message"}}`), a page for the UI.
struct ProblemError: HTTPResponseError {
    var status: HTTPResponse.Status
    var detail: String

    func response(from request: Request, context: some RequestContext) throws -> Response {
        request.uri.path.hasPrefix("/api/")
            ? Problem.response(status, detail)
            : Pages.problem(status, detail)
    }
}

enum Problem {
    static func response(_ status: HTTPResponse.Status, _ detail: String, bearer: Bool = false) -> Response {
        let body = JSONText.object(["error": .object(["status": .int(status.code), "message": .string(detail)])])
        var headers: HTTPFields = [.contentType: "application/json; charset=utf-8"]
        if bearer { headers[.wwwAuthenticate] = "Bearer realm=\"switchboard\"" }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body.text)))
    }
}

/// A small JSON writer for answers: the API's shapes are written out explicitly (they are the contract
/// in docs/openapi.yaml), and values the store keeps as JSON text go through unchanged.
indirect enum JSONText: Sendable {
    case string(String)
    case int(Int)
    case double(Double)
    case bool(Bool)
    case null
    case array([JSONText])
    case object(KeyValuePairs<String, JSONText>)
    case dict([(String, JSONText)])
    /// JSON text kept as it is (an attribute's value, a message body that is JSON).
    case raw(String)

    static func optional(_ s: String?) -> JSONText { s.map { .string($0) } ?? .null }

    var text: String {
        var out = ""
        write(&out)
        return out
    }

    func write(_ out: inout String) {
        switch self {
        case .string(let s): Self.quote(s, &out)
        case .int(let i): out += String(i)
        case .double(let d): out += d.isFinite ? String(d) : "null"
        case .bool(let b): out += b ? "true" : "false"
        case .null: out += "null"
        case .raw(let r): out += r
        case .array(let a):
            out += "["
            for (n, v) in a.enumerated() {
                if n > 0 { out += "," }
                v.write(&out)
            }
            out += "]"
        case .object(let o): Self.members(o.map { ($0.key, $0.value) }, &out)
        case .dict(let d): Self.members(d, &out)
        }
    }

    private static func members(_ m: [(String, JSONText)], _ out: inout String) {
        out += "{"
        for (n, (k, v)) in m.enumerated() {
            if n > 0 { out += "," }
            quote(k, &out)
            out += ":"
            v.write(&out)
        }
        out += "}"
    }

    static func quote(_ s: String, _ out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "<": out += "\\u003c"  // safe inside a <script> or an HTML attribute, should it ever land there
            default:
                if u.value < 0x20 || u.value == 0x2028 || u.value == 0x2029 {
                    out += String(format: "\\u%04x", u.value)
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out += "\""
    }

    func response(status: HTTPResponse.Status = .ok, headers extra: HTTPFields = [:]) -> Response {
        var headers: HTTPFields = [.contentType: "application/json; charset=utf-8"]
        headers.append(contentsOf: extra)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

/// Times as the UI and the API show them: UTC, to the millisecond, ISO 8601.
enum Time {
    static func iso(_ d: Date) -> String {
        d.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }

    static func parse(_ s: String) -> Date? {
        if let d = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(s) { return d }
        return try? Date.ISO8601FormatStyle().parse(s)
    }

    static func duration(_ seconds: TimeInterval) -> String {
        let ms = Int((seconds * 1000).rounded())
        if ms < 1000 { return "\(ms) ms" }
        if ms < 60_000 { return String(format: "%.1f s", Double(ms) / 1000) }
        if ms < 3_600_000 { return "\(ms / 60_000) min \(ms % 60_000 / 1000) s" }
        return "\(ms / 3_600_000) h \(ms % 3_600_000 / 60_000) min"
    }
}
