import Foundation
import GRDB
import JSONPath
import Rules

// A conversation's timeline: read, and its entries' compact JSON form (one row per commit).
extension SQLiteStore {
    package func timeline(conversationId: String) throws -> [TimelineEntry] {
        try pool.read { db in try Self.timeline(db, conversationId: conversationId) }
    }

    /// A conversation's whole timeline: rows of the table before v6 (one entry each), then `timeline_entries`.
    static func timeline(_ db: Database, conversationId: String) throws -> [TimelineEntry] {
        let before = try Row.fetchAll(
            db.cachedStatement(sql: "SELECT * FROM timeline WHERE conversation_id = ? ORDER BY id"), arguments: [conversationId]
        ).map {
            TimelineEntry(
                conversationId: $0["conversation_id"], at: Date(timeIntervalSince1970: $0["at"]), kind: TimelineKind(rawValue: $0["kind"]),
                endpoint: $0["endpoint"], who: $0["who"], messageId: $0["message_id"], rule: $0["rule"],
                detail: $0["detail"])
        }
        let rows = try Row.fetchAll(
            db.cachedStatement(sql: "SELECT entries, body FROM timeline_entries WHERE conversation_id = ? ORDER BY id"),
            arguments: [conversationId])
        return try before + rows.flatMap { try decode(row: $0, conversationId: conversationId) }
    }

    /// Timeline entries of one conversation as a JSON array (`at` in seconds since 1970; absent fields left
    /// out), and the first body among them as text of its own (its entry says `"body_column": true`): a
    /// message's body is most of a row, and escaped inside the array it cost a tenth of a commit.
    /// Written as text directly (no tree of values to build, hash and sort: a commit writes one per message).
    static func encode(_ entries: ArraySlice<TimelineEntry>) -> (entries: String, body: String?) {
        var column: String?
        var out: [UInt8] = []
        out.reserveCapacity(200 * entries.count)
        func member(_ key: String, _ value: String?) {
            guard let value else { return }
            out.append(UInt8(ascii: ","))
            JSON.appendQuoted(key, to: &out)
            out.append(UInt8(ascii: ":"))
            JSON.appendQuoted(value, to: &out)
        }
        out.append(UInt8(ascii: "["))
        for (i, e) in entries.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: #"{"at":"#.utf8)
            out.append(contentsOf: JSONNumber(e.at.timeIntervalSince1970).description.utf8)
            member("kind", e.kind.rawValue)
            member("detail", e.detail)
            member("endpoint", e.endpoint)
            member("who", e.who)
            member("message_id", e.messageId)
            member("rule", e.rule)
            if let body = e.body {
                if column == nil {
                    column = body
                    out.append(contentsOf: #","body_column":true"#.utf8)
                } else {
                    member("body", body)
                }
            }
            if let ms = e.sinceIntakeMs { out.append(contentsOf: #","since_intake_ms":\#(ms)"#.utf8) }
            member("type", e.messageType)
            if let ms = e.delayMs { out.append(contentsOf: #","delay_ms":\#(ms)"#.utf8) }
            member("answers", e.answers)
            member("config", e.configuration)
            if let v = e.met { out.append(contentsOf: #","met":\#(v)"#.utf8) }
            out.append(UInt8(ascii: "}"))
        }
        out.append(UInt8(ascii: "]"))
        return (String(decoding: out, as: UTF8.self), column)
    }

    /// One `timeline_entries` row (its `entries` and `body` columns) back as entries.
    static func decode(row: Row, conversationId: String) throws -> [TimelineEntry] {
        let column: String? = row["body"]
        guard case .array(let items) = try JSON.parse(row["entries"] as String) else {
            throw StoreError("timeline of conversation \(conversationId): a row is not a JSON array")
        }
        return items.map { o in
            var at = 0.0
            if case .number(let n)? = o["at"] { at = n.value }
            var e = TimelineEntry(
                conversationId: conversationId, at: Date(timeIntervalSince1970: at),
                kind: TimelineKind(rawValue: o["kind"]?.stringValue ?? ""), endpoint: o["endpoint"]?.stringValue, who: o["who"]?.stringValue,
                messageId: o["message_id"]?.stringValue, rule: o["rule"]?.stringValue, detail: o["detail"]?.stringValue ?? "",
                body: o["body_column"] == .bool(true) ? column : o["body"]?.stringValue)
            if case .number(let n)? = o["since_intake_ms"] { e.sinceIntakeMs = Int(n.value) }
            e.messageType = o["type"]?.stringValue
            if case .number(let n)? = o["delay_ms"] { e.delayMs = Int(n.value) }
            e.answers = o["answers"]?.stringValue
            e.configuration = o["config"]?.stringValue
            if case .number(let n)? = o["met"] { e.met = Int(n.value) }
            return e
        }
    }
}
