import Foundation
import GRDB
import Rules

extension SQLiteStore {
    /// Blanks one conversation's stored contents in one transaction: timeline bodies and what entries say
    /// of the content, attributes, outbound bodies, and its tickets' parked copies. Its version moves on,
    /// so a store process that holds it in its cache reads it again before deciding on it.
    package func erase(conversationId id: String) async throws -> Erasure? {
        let erased = try await pool.write { db -> Erasure? in
            guard try Int.fetchOne(db, sql: "SELECT version FROM conversation WHERE id = ?", arguments: [id]) != nil else { return nil }
            var e = Erasure()
            for row in try Row.fetchAll(db, sql: "SELECT id, kind, detail FROM timeline WHERE conversation_id = ?", arguments: [id]) {
                let entry = TimelineEntry(conversationId: id, at: Date(), kind: TimelineKind(rawValue: row["kind"]), detail: row["detail"])
                try db.execute(sql: "UPDATE timeline SET detail = ? WHERE id = ?", arguments: [Erasure.redact(entry).detail, row["id"] as Int64])
                e.timelineEntries += 1
            }
            for row in try Self.timelineRows(db, conversationId: id) {
                let entries = try Self.decode(row: row, conversationId: id).map(Erasure.redact)
                try db.execute(
                    sql: "UPDATE timeline_entries SET entries = ?, body = NULL WHERE id = ?",
                    arguments: [Self.encode(entries[...]).entries, row["id"] as Int64])
                e.timelineEntries += entries.count
            }
            try db.execute(sql: "DELETE FROM attribute WHERE conversation_id = ?", arguments: [id])
            e.attributes = db.changesCount
            try db.execute(sql: "UPDATE outbox SET body = X'' WHERE conversation_id = ?", arguments: [id])
            e.outboundBodies = db.changesCount
            try db.execute(
                sql: "DELETE FROM parked WHERE (endpoint, ticket) IN (SELECT endpoint, ticket_id FROM reference WHERE conversation_id = ?)",
                arguments: [id])
            e.parked = db.changesCount
            try db.execute(sql: "UPDATE conversation SET version = version + 1 WHERE id = ?", arguments: [id])
            return e
        }
        cache.withLock { $0.drop(id) }
        return erased
    }
}
