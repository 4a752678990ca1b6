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
        let rows = try timelineRows(db, conversationId: conversationId).reversed()
        return try before + rows.flatMap { try decode(row: $0, conversationId: conversationId) }
    }

    /// A conversation's `timeline_entries` rows (id, conversation_id, entries, body, prev), newest first: from
    /// the conversation's newest row (`conversation.last_timeline`) back along each row's `prev` (schema v13:
    /// the table has no index by conversation). Only rows older than `before` when it is given, at most `limit`.
    static func timelineRows(_ db: Database, conversationId: String, before: Int64? = nil, limit: Int = .max) throws -> [Row] {
        var next = try Int64.fetchOne(
            db.cachedStatement(sql: "SELECT last_timeline FROM conversation WHERE id = ?"), arguments: [conversationId])
        var rows: [Row] = []
        while let id = next, rows.count < limit {
            if let before, id >= before {
                next = try Int64.fetchOne(db.cachedStatement(sql: "SELECT prev FROM timeline_entries WHERE id = ?"), arguments: [id])
                continue
            }
            guard let row = try Row.fetchOne(
                db.cachedStatement(sql: "SELECT id, conversation_id, entries, body, prev FROM timeline_entries WHERE id = ?"), arguments: [id])
            else { break }
            rows.append(row)
            next = row["prev"]
        }
        return rows
    }

    /// A commit's timeline entries as one compact JSON text, and the first body among them as text of its own
    /// (its entry says `"body_column": true`): a message's body is most of a row, and escaped inside the
    /// entries it cost a tenth of a commit. Written as text directly (no tree of values to build, hash and sort).
    ///
    /// The form (`{"v":2,"entries":[...]}`) keeps a row small enough that two share a 4 KiB page with a 1 KiB
    /// body, since every page a commit touches is written twice (its WAL frame, then the checkpoint):
    /// - `at`, `endpoint`, `message_id` and `rule` are written only where they differ from the entry before
    ///   (`null` where one is absent after an entry that had it); the first entry has them all;
    /// - a detail the entry's typed fields say already is left out and derived when read: a rule's match
    ///   (`TimelineEntry.matchedDetail`) and a message sent (`TimelineEntry.sentDetail`);
    /// - absent fields are left out.
    /// Rows written before this form (a plain array, every entry whole) read as they were (`decode`).
    static func encode(_ entries: ArraySlice<TimelineEntry>) -> (entries: String, body: String?) {
        var column: String?
        var out: [UInt8] = []
        out.reserveCapacity(120 * entries.count + 64)
        func member(_ key: String, _ value: String?) {
            guard let value else { return }
            out.append(UInt8(ascii: ","))
            JSON.appendQuoted(key, to: &out)
            out.append(UInt8(ascii: ":"))
            JSON.appendQuoted(value, to: &out)
        }
        /// A field inherited from the entry before: written when it differs, `null` when it went away.
        func inherited(_ key: String, _ value: String?, _ previous: String?) {
            guard value != previous else { return }
            if let value { member(key, value) } else { out.append(contentsOf: ",\"\(key)\":null".utf8) }
        }
        out.append(contentsOf: #"{"v":2,"entries":["#.utf8)
        var previous: TimelineEntry?
        for (i, e) in entries.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: #"{"kind":"#.utf8)
            JSON.appendQuoted(e.kind.rawValue, to: &out)
            if previous == nil || previous?.at != e.at {
                out.append(contentsOf: #","at":"#.utf8)
                out.append(contentsOf: JSONNumber(e.at.timeIntervalSince1970).description.utf8)
            }
            if e.detail != derivedDetail(kind: e.kind, rule: e.rule, endpoint: e.endpoint, type: e.messageType, delayMs: e.delayMs) {
                member("detail", e.detail)
            }
            inherited("endpoint", e.endpoint, previous?.endpoint)
            member("who", e.who)
            inherited("message_id", e.messageId, previous?.messageId)
            inherited("rule", e.rule, previous?.rule)
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
            previous = e
        }
        out.append(contentsOf: "]}".utf8)
        return (String(decoding: out, as: UTF8.self), column)
    }

    /// The detail an entry's typed fields say already, which the compact form leaves out; nil for the rest.
    static func derivedDetail(kind: TimelineKind, rule: String?, endpoint: String?, type: String?, delayMs: Int?) -> String? {
        switch kind {
        case .ruleMatched: return rule.map { TimelineEntry.matchedDetail(rule: $0) }
        case .sent:
            guard let type, let endpoint else { return nil }
            return TimelineEntry.sentDetail(type: type, target: endpoint, delayMs: delayMs)
        default: return nil
        }
    }

    /// One `timeline_entries` row (its `entries` and `body` columns) back as entries: the compact form, or
    /// the plain array rows were written as before it.
    static func decode(row: Row, conversationId: String) throws -> [TimelineEntry] {
        let column: String? = row["body"]
        let items: [JSON]
        let compact: Bool
        switch try JSON.parse(row["entries"] as String) {
        case .array(let all):
            (items, compact) = (all, false)
        case .object(let o) where o["v"]?.scalarText == "2":
            guard case .array(let all)? = o["entries"] else {
                throw StoreError("timeline of conversation \(conversationId): a row has no entries")
            }
            (items, compact) = (all, true)
        default:
            throw StoreError("timeline of conversation \(conversationId): a row is neither a JSON array nor a version 2 object")
        }
        var previous: TimelineEntry?
        return items.map { o in
            /// A field the compact form inherits from the entry before when it is absent.
            func field(_ key: String, _ inherited: String?) -> String? {
                switch o[key] {
                case nil: return compact ? inherited : nil
                case .null?: return nil
                case let v?: return v.stringValue
                }
            }
            var at = previous?.at.timeIntervalSince1970 ?? 0
            if case .number(let n)? = o["at"] { at = n.value }
            var e = TimelineEntry(
                conversationId: conversationId, at: Date(timeIntervalSince1970: at),
                kind: TimelineKind(rawValue: o["kind"]?.stringValue ?? ""), endpoint: field("endpoint", previous?.endpoint),
                who: o["who"]?.stringValue, messageId: field("message_id", previous?.messageId), rule: field("rule", previous?.rule),
                detail: o["detail"]?.stringValue ?? "",
                body: o["body_column"] == .bool(true) ? column : o["body"]?.stringValue)
            if case .number(let n)? = o["since_intake_ms"] { e.sinceIntakeMs = Int(n.value) }
            e.messageType = o["type"]?.stringValue
            if case .number(let n)? = o["delay_ms"] { e.delayMs = Int(n.value) }
            e.answers = o["answers"]?.stringValue
            e.configuration = o["config"]?.stringValue
            if case .number(let n)? = o["met"] { e.met = Int(n.value) }
            if compact, o["detail"] == nil {
                e.detail = derivedDetail(kind: e.kind, rule: e.rule, endpoint: e.endpoint, type: e.messageType, delayMs: e.delayMs) ?? ""
            }
            previous = e
            return e
        }
    }
}
