import Foundation
import GRDB
import Rules

/// The administrator's reads run on GRDB's reader connections (async: they never hold an HTTP event
/// loop), beside the writer, in WAL mode: a page never blocks a commit.
extension SQLiteStore: AdminStore {
    package func tickets(_ ticketId: String, endpoints: [String]) async throws -> [TicketHit] {
        try await pool.read { db in
            try endpoints.compactMap { endpoint in
                try String.fetchOne(
                    db.cachedStatement(sql: "SELECT conversation_id FROM reference WHERE endpoint = ? AND ticket_id = ?"),
                    arguments: [endpoint, ticketId]
                ).map { TicketHit(endpoint: endpoint, ticketId: ticketId, conversationId: $0) }
            }
        }
    }

    package func record(conversationId id: String) async throws -> ConversationRecord? {
        try await pool.read { db in
            guard let snapshot = try Self.snapshot(db, id: id),
                let times = try Row.fetchOne(db, sql: "SELECT created_at, updated_at FROM conversation WHERE id = ?", arguments: [id])
            else { return nil }
            let timeline = try Self.timeline(db, conversationId: id)
            var outbound: [String: OutboundRecord] = [:]
            for messageId in Set(timeline.filter { $0.kind == .sent }.compactMap(\.messageId)) {
                guard let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM outbox WHERE message_id = ?"), arguments: [messageId])
                else { continue }
                let failedAt: Double? = row["failed_at"]
                outbound[messageId] = OutboundRecord(
                    outbound: Self.outbound(row), createdAt: Date(timeIntervalSince1970: row["created_at"]),
                    failedAt: failedAt.map { Date(timeIntervalSince1970: $0) }, failure: row["failure"])
            }
            let audit = try Row.fetchAll(db, sql: "SELECT * FROM audit WHERE conversation_id = ? ORDER BY id", arguments: [id]).map(Self.audit)
            return ConversationRecord(
                snapshot: snapshot, createdAt: Date(timeIntervalSince1970: times["created_at"]),
                updatedAt: Date(timeIntervalSince1970: times["updated_at"]), timeline: timeline, outbound: outbound, audit: audit)
        }
    }

    package func recent(before cursor: Int64?, limit: Int, conversationId: String?) async throws -> [TimelineGroup] {
        try await pool.read { db in
            let rows: [Row]
            if let conversationId {
                rows = try Self.timelineRows(db, conversationId: conversationId, before: cursor, limit: limit)
            } else if let cursor {
                rows = try Row.fetchAll(
                    db, sql: "SELECT id, conversation_id, entries, body FROM timeline_entries WHERE id < ? ORDER BY id DESC LIMIT ?",
                    arguments: [cursor, limit])
            } else {
                rows = try Row.fetchAll(db, sql: "SELECT id, conversation_id, entries, body FROM timeline_entries ORDER BY id DESC LIMIT ?", arguments: [limit])
            }
            // One row is one message's entries for one conversation (see `apply`).
            return try rows.map { row in
                TimelineGroup(cursor: row["id"], entries: try Self.decode(row: row, conversationId: row["conversation_id"]))
            }
        }
    }

    package func append(audit a: AuditRecord) async throws {
        try await pool.write { db in
            try db.execute(
                sql: "INSERT INTO audit (at, who, action, reason, conversation_id, endpoint, message_id, parked_id, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                arguments: [a.at.timeIntervalSince1970, a.who, a.action, a.reason, a.conversationId, a.endpoint, a.messageId, a.parkedId, a.detail])
        }
    }

    package func audit(limit: Int, withoutConversation: Bool) async throws -> [AuditRecord] {
        try await pool.read { db in
            try Row.fetchAll(
                db, sql: "SELECT * FROM audit \(withoutConversation ? "WHERE conversation_id IS NULL" : "") ORDER BY id DESC LIMIT ?",
                arguments: [limit]
            ).map(Self.audit)
        }
    }

    package func conversationCount() async throws -> Int {
        // The rowid's maximum: exact while nothing was pruned, and free (count(*) reads the whole table).
        try await pool.read { db in try Int.fetchOne(db, sql: "SELECT coalesce(max(rowid), 0) FROM conversation") ?? 0 }
    }

    package func conversationIds(changedSince since: Date?) async throws -> [String] {
        try await pool.read { db in
            try String.fetchAll(
                db, sql: "SELECT id FROM conversation WHERE updated_at >= ? ORDER BY updated_at DESC",
                arguments: [since?.timeIntervalSince1970 ?? -Double.greatestFiniteMagnitude])
        }
    }

    package func delayedPending(now: Date, within: TimeInterval) async throws -> [String: Int] {
        let t = now.timeIntervalSince1970
        return try await pool.read { db in
            var out: [String: Int] = [:]
            // On the partial index outbox_delayed: only delayed rows are in it.
            for row in try Row.fetchAll(
                db, sql: """
                    SELECT target, count(*) AS n FROM outbox
                    WHERE delay_ms > 0 AND created_at > ? AND kind = 'message' AND created_at + delay_ms / 1000.0 > ?
                    GROUP BY target
                    """, arguments: [t - within, t])
            {
                out[row["target"]] = row["n"]
            }
            return out
        }
    }

    static func audit(_ row: Row) -> AuditRecord {
        AuditRecord(
            id: row["id"], at: Date(timeIntervalSince1970: row["at"]), who: row["who"], action: row["action"], reason: row["reason"],
            conversationId: row["conversation_id"], endpoint: row["endpoint"], messageId: row["message_id"], parkedId: row["parked_id"],
            detail: row["detail"])
    }
}
