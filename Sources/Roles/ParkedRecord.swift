import AMQP
import Foundation
import JSONPath
import Rules
import Store

/// A parked message's properties as the store keeps them (`ParkedRow.properties`): every property and
/// header as it came (`Properties.table`), written in the store RPC's binary form.
extension FieldValue: WireCodable {
    package func write(to w: inout WireWriter) {
        switch self {
        case .string(let s): w.bytes.append(1); w.string(s)
        case .bytes(let d): w.bytes.append(2); w.data(d)
        case .int(let i): w.bytes.append(3); w.int(Int(i))
        case .bool(let b): w.bytes.append(b ? 5 : 4)
        case .float(let f): w.bytes.append(6); w.double(Double(f))
        case .double(let d): w.bytes.append(7); w.double(d)
        case .decimal(let scale, let value): w.bytes.append(8); w.bytes.append(scale); w.unsigned(UInt64(value))
        case .timestamp(let t): w.bytes.append(9); w.unsigned(t)
        case .table(let t): w.bytes.append(10); t.write(to: &w)
        case .array(let a): w.bytes.append(11); a.write(to: &w)
        case .void: w.bytes.append(12)
        }
    }

    package init(from r: inout WireReader) throws {
        switch try r.byte() {
        case 1: self = .string(try r.string())
        case 2: self = .bytes(try r.data())
        case 3: self = .int(Int64(try r.int()))
        case 4: self = .bool(false)
        case 5: self = .bool(true)
        case 6: self = .float(Float(try r.double()))
        case 7: self = .double(try r.double())
        case 8:
            let scale = try r.byte()
            guard let value = UInt32(exactly: try r.unsigned()) else { throw WireError("a decimal beyond 32 bits") }
            self = .decimal(scale: scale, value: value)
        case 9: self = .timestamp(try r.unsigned())
        case 10: self = .table(try [String: FieldValue](from: &r))
        case 11: self = .array(try [FieldValue](from: &r))
        case 12: self = .void
        case let b: throw WireError("field kind \(b)")
        }
    }
}

extension ParkedMessage {
    /// What the store keeps of a message `sb.parked` delivered.
    package static func row(_ m: Message, config: SwitchboardConfig, switchboardUser: String) -> ParkedRow {
        let p = ParkedMessage(m, switchboardUser: switchboardUser)
        return ParkedRow(
            id: p.id, parkedAt: parseTime(p.parkedAt) ?? Date(), reason: p.reason, reasonGroup: p.reasonGroup, stage: p.stage,
            origin: p.origin.kind, endpoint: p.endpoint, ticket: ticket(m.body, endpoint: p.endpoint, config: config),
            messageId: p.messageId, properties: StoreWire.encode(FieldValue.table(m.properties.table)), body: m.body)
    }

    static func parseTime(_ s: String) -> Date? {
        if let d = try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(s) { return d }
        return try? Date.ISO8601FormatStyle().parse(s)
    }

    /// The ticket id the body names at its endpoint, for finding a conversation's parked copies: only for
    /// bodies small enough to read cheaply (a parked message may be anything an ESB sent).
    static func ticket(_ body: Data, endpoint: String?, config: SwitchboardConfig) -> String? {
        guard let endpoint, let e = config.endpoints[endpoint], body.count <= 1 << 20, let json = try? JSON.parse(body) else { return nil }
        return e.ticketId.first(json)?.scalarText.map { String($0.prefix(255)) }
    }

    /// A stored row as the administrator reads it: its body may be an excerpt (`bodyBytes` is the whole's length).
    package init(row: ParkedRow, switchboardUser: String) {
        let table = (try? StoreWire.decode(FieldValue.self, row.properties)).flatMap { v -> [String: FieldValue]? in
            if case .table(let t) = v { return t } else { return nil }
        }
        self.init(Message(body: row.body, properties: Properties(table: table ?? [:])), switchboardUser: switchboardUser)
        id = row.id
        seq = row.seq
        bodyBytes = row.bodyBytes
        ticket = row.ticket
        if parkedAt.isEmpty { parkedAt = row.parkedAt.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true)) }
        if table == nil {
            // Written by a release that reads properties differently: what the row says, no replay.
            reason = row.reason
            stage = row.stage
            endpoint = row.endpoint
            messageId = row.messageId
            origin = .unknown(userId: nil)
        }
    }

    /// How much of a body a listing shows, and a message's own page.
    package static let excerptBytes = 160
    package static let shownBytes = 256 * 1024

    /// The excerpt as one line of text.
    package var excerptText: String {
        let text = String(decoding: body.prefix(Self.excerptBytes), as: UTF8.self).replacing(/\s+/, with: " ")
        return body.count < bodyBytes || body.count > Self.excerptBytes ? text + "…" : text
    }

    /// One JSON line (`switchboard parked list --json`): what the store keeps, the parked message's own
    /// properties (headers as typed JSON, see `FieldValue.json`), and its body as text and base64.
    package var lineJSON: String {
        func text(_ v: String?) -> JSON { v.map(JSON.string) ?? .null }
        var props: [String: JSON] = [:]
        if let p = properties { props = p.table.mapValues(\.json) }
        let value = JSON.object([
            "id": .string(id), "seq": .number(JSONNumber(Double(seq))), "reason": .string(reason), "reason_group": .string(reasonGroup),
            "stage": .string(stage), "origin": .string(origin.kind), "endpoint": text(endpoint), "ticket": text(ticket),
            "message_id": text(messageId), "parked_at": .string(parkedAt),
            "exchange": text(original?.exchange), "routing_key": text(original?.routingKey),
            "properties": .object(props),
            "body_bytes": .number(JSONNumber(Double(bodyBytes))), "body": .string(String(decoding: body, as: UTF8.self)),
            "body_base64": .string(body.base64EncodedString()),
        ])
        return value.serializedString
    }

    /// The message as it was parked (for a replay): only from a row with its whole body.
    package var message: Message? {
        guard bodyBytes == body.count, let properties else { return nil }
        return Message(body: body, properties: properties)
    }
}

extension FieldValue {
    /// As JSON, keeping what JSON has no type for tagged: bytes `{"$bytes": base64}`, a decimal
    /// `{"$decimal": "1.50"}`, a timestamp `{"$timestamp": seconds}`.
    package var json: JSON {
        switch self {
        case .string(let s): return .string(s)
        case .bytes(let d): return .object(["$bytes": .string(d.base64EncodedString())])
        case .int(let i): return .number(JSONNumber(text: String(i)) ?? JSONNumber(Double(i)))
        case .bool(let b): return .bool(b)
        case .float(let f): return .number(JSONNumber(Double(f)))
        case .double(let d): return d.isFinite ? .number(JSONNumber(d)) : .string(String(d))
        case .decimal(let scale, let value):
            var digits = String(value)
            if scale > 0 {
                if digits.count <= Int(scale) { digits = String(repeating: "0", count: Int(scale) - digits.count + 1) + digits }
                digits.insert(".", at: digits.index(digits.endIndex, offsetBy: -Int(scale)))
            }
            return .object(["$decimal": .string(digits)])
        case .timestamp(let t): return .object(["$timestamp": .number(JSONNumber(Double(t)))])
        case .table(let t): return .object(t.mapValues(\.json))
        case .array(let a): return .array(a.map(\.json))
        case .void: return .null
        }
    }
}

extension ParkedOrigin {
    /// The origin column: switchboard, broker, unknown.
    package var kind: String {
        switch self {
        case .switchboard: return "switchboard"
        case .deadLettered: return "broker"
        case .unknown: return "unknown"
        }
    }
}
