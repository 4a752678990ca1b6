import Foundation
import Logging
import PostgresNIO
import Rules

extension PostgresStore {
    /// As `SQLiteStore.erase`, in one transaction.
    package func erase(conversationId id: String) async throws -> Erasure? {
        let logger = self.logger
        do {
            return try await client.withTransaction(logger: logger) { db -> Erasure? in
                func count(_ query: PostgresQuery) async throws -> Int {
                    var n = 0
                    for try await _ in try await db.query(query, logger: logger).decode(Int.self) { n += 1 }
                    return n
                }
                guard try await count("SELECT 1 FROM conversation WHERE id = \(id) FOR UPDATE") > 0 else { return nil }
                var e = Erasure()
                var rows: [(Int64, String, String)] = []
                for try await row in try await db.query(
                    "SELECT id, kind, detail FROM timeline WHERE conversation_id = \(id)", logger: logger
                ).decode((Int64, String, String).self) {
                    rows.append(row)
                }
                for (rowId, kind, detail) in rows {
                    let redacted = Erasure.redact(TimelineEntry(conversationId: id, at: Date(), kind: TimelineKind(rawValue: kind), detail: detail)).detail
                    try await db.query("UPDATE timeline SET detail = \(redacted), body = NULL WHERE id = \(rowId)", logger: logger)
                }
                e.timelineEntries = rows.count
                e.attributes = try await count("DELETE FROM attribute WHERE conversation_id = \(id) RETURNING 1")
                e.outboundBodies = try await count("UPDATE outbox SET body = ''::bytea WHERE conversation_id = \(id) RETURNING 1")
                e.parked = try await count(
                    "DELETE FROM parked WHERE (endpoint, ticket) IN (SELECT endpoint, ticket_id FROM reference WHERE conversation_id = \(id)) RETURNING 1")
                try await db.query("UPDATE conversation SET version = version + 1 WHERE id = \(id)", logger: logger)
                return e
            }
        } catch {
            throw storeError(error)
        }
    }
}
