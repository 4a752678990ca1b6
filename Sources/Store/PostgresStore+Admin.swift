import Foundation
import Logging
import PostgresNIO
import Rules

/// The administrator's reads, natively async on the client's pool (no bridge), on the indexes the hot
/// path has: reference's key, timeline_by_conversation, the timeline's and outbox's primary keys.
extension PostgresStore: AdminStore {
    func admin<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection, Logger) async throws -> T) async throws -> T {
        let logger = self.logger
        do {
            return try await client.withConnection { db in try await body(db, logger) }
        } catch let e as PSQLError {
            throw StoreError("PostgreSQL at \(redactedURL): \(Self.describe(e))", code: Self.code(e))
        }
    }

    /// `body` in one read-only REPEATABLE READ transaction: every statement sees the same snapshot, so a
    /// conversation's version, timeline and outbox agree even while workers commit (READ COMMITTED gives each
    /// statement its own: a version read before a commit beside a timeline read after it).
    func adminSnapshot<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection, Logger) async throws -> T) async throws -> T {
        try await admin { db, logger in
            try await db.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", logger: logger)
            do {
                let result = try await body(db, logger)
                try await db.query("COMMIT", logger: logger)
                return result
            } catch {
                _ = try? await db.query("ROLLBACK", logger: logger)
                throw error
            }
        }
    }

    package func tickets(_ ticketId: String, endpoints: [String]) async throws -> [TicketHit] {
        try await admin { db, logger in
            var hits: [TicketHit] = []
            for endpoint in endpoints {
                for try await id in try await db.query(
                    "SELECT conversation_id FROM reference WHERE endpoint = \(endpoint) AND ticket_id = \(ticketId)", logger: logger
                ).decode(String.self) {
                    hits.append(TicketHit(endpoint: endpoint, ticketId: ticketId, conversationId: id))
                }
            }
            return hits
        }
    }

    package func record(conversationId id: String) async throws -> ConversationRecord? {
        try await adminSnapshot { db, logger in
            var snapshotText = "null"
            var times: (Double, Double)?
            for try await (text, created, updated) in try await db.query(
                "SELECT sb_snapshot(id)::text, created_at, updated_at FROM conversation WHERE id = \(id)", logger: logger
            ).decode((String, Double, Double).self) {
                snapshotText = text
                times = (created, updated)
            }
            guard let times else { return ConversationRecord?.none }
            let snapshot = try Self.decoder.decode(ConversationSnapshot.self, from: Data(snapshotText.utf8))
            let timeline = try await Self.entries(
                db, logger: logger, conversationId: id, before: nil, newestFirst: false, limit: 1_000_000).map(\.entry)
            var outbound: [String: OutboundRecord] = [:]
            for messageId in Set(timeline.filter { $0.kind == .sent }.compactMap(\.messageId)) {
                for try await (text, created, failedAt, failure) in try await db.query(
                    "SELECT sb_outbound_json(o)::text, created_at, failed_at, failure FROM outbox o WHERE message_id = \(messageId)",
                    logger: logger
                ).decode((String, Double, Double?, String?).self) {
                    outbound[messageId] = OutboundRecord(
                        outbound: try Self.decoder.decode(StoredOutbound.self, from: Data(text.utf8)),
                        createdAt: Date(timeIntervalSince1970: created), failedAt: failedAt.map { Date(timeIntervalSince1970: $0) },
                        failure: failure)
                }
            }
            let audit = try await Self.audit(db, logger: logger, conversationId: id, withoutConversation: false, limit: 10_000)
            return ConversationRecord(
                snapshot: snapshot, createdAt: Date(timeIntervalSince1970: times.0), updatedAt: Date(timeIntervalSince1970: times.1),
                timeline: timeline, outbound: outbound, audit: audit)
        }
    }

    package func recent(before cursor: Int64?, limit: Int, conversationId: String?) async throws -> [TimelineGroup] {
        try await admin { db, logger in
            // One row per entry here: read enough rows for `limit` messages, and leave out the last group,
            // which may continue past the rows read (unless the rows ran out).
            let rows = limit * 12
            let entries = try await Self.entries(
                db, logger: logger, conversationId: conversationId, before: cursor, newestFirst: true, limit: rows)
            var groups = TimelineGroup.group(entries)
            if entries.count == rows, groups.count > 1 { groups.removeLast() }
            return Array(groups.prefix(limit))
        }
    }

    package func append(audit a: AuditRecord) async throws {
        _ = try await admin { db, logger in
            try await db.query(
                """
                INSERT INTO audit (at, who, action, reason, conversation_id, endpoint, message_id, parked_id, detail)
                VALUES (\(a.at.timeIntervalSince1970), \(a.who), \(a.action), \(a.reason), \(a.conversationId), \(a.endpoint),
                        \(a.messageId), \(a.parkedId), \(a.detail))
                """, logger: logger)
        }
    }

    package func audit(limit: Int, withoutConversation: Bool) async throws -> [AuditRecord] {
        try await admin { db, logger in
            try await Self.audit(db, logger: logger, conversationId: nil, withoutConversation: withoutConversation, limit: limit)
        }
    }

    package func conversationIds(changedSince since: Date?) async throws -> [String] {
        try await admin { db, logger in
            var ids: [String] = []
            let after = since?.timeIntervalSince1970 ?? -Double.greatestFiniteMagnitude
            for try await id in try await db.query(
                "SELECT id FROM conversation WHERE updated_at >= \(after) ORDER BY updated_at DESC", logger: logger
            ).decode(String.self) {
                ids.append(id)
            }
            return ids
        }
    }

    package func conversationCount() async throws -> Int {
        // The planner's estimate: count(*) would read a million rows for one number on a page.
        try await admin { db, logger in
            var n = 0
            for try await v in try await db.query(
                "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = 'conversation'::regclass", logger: logger
            ).decode(Int64.self) {
                n = Int(v)
            }
            return n
        }
    }

    package func delayedPending(now: Date, within: TimeInterval) async throws -> [String: Int] {
        let t = now.timeIntervalSince1970
        let since = t - within
        return try await admin { db, logger in
            var out: [String: Int] = [:]
            for try await (target, n) in try await db.query(
                """
                SELECT target, count(*) FROM outbox
                WHERE delay_ms > 0 AND created_at > \(since) AND kind = 'message' AND created_at + delay_ms / 1000.0 > \(t)
                GROUP BY target
                """, logger: logger
            ).decode((String, Int64).self) {
                out[target] = Int(n)
            }
            return out
        }
    }

    private static let entryColumns = "id, conversation_id, at, kind, endpoint, who, message_id, rule, detail, body, since_intake_ms, message_type, delay_ms, answers, configuration, met"

    /// Timeline entries with everything SQLite returns too (bodies, hop times, the typed fields).
    static func entries(
        _ db: PostgresConnection, logger: Logger, conversationId: String?, before: Int64?, newestFirst: Bool, limit: Int
    ) async throws -> [(id: Int64, entry: TimelineEntry)] {
        let tail = " ORDER BY id \(newestFirst ? "DESC" : "ASC") LIMIT \(limit)"
        var query: PostgresQuery
        switch (conversationId, before) {
        case (let c?, let b?): query = "SELECT \(unescaped: entryColumns) FROM timeline WHERE conversation_id = \(c) AND id < \(b)"
        case (let c?, nil): query = "SELECT \(unescaped: entryColumns) FROM timeline WHERE conversation_id = \(c)"
        case (nil, let b?): query = "SELECT \(unescaped: entryColumns) FROM timeline WHERE id < \(b)"
        case (nil, nil): query = "SELECT \(unescaped: entryColumns) FROM timeline"
        }
        query.sql += tail
        var out: [(id: Int64, entry: TimelineEntry)] = []
        for try await (id, conversation, at, kind, endpoint, who, messageId, rule, detail, body, since, type, delay, answers, configuration, met)
            in try await db.query(query, logger: logger)
            .decode((Int64, String, Double, String, String?, String?, String?, String?, String, String?, Int64?, String?, Int64?, String?, String?, Int64?).self)
        {
            var e = TimelineEntry(
                conversationId: conversation, at: Date(timeIntervalSince1970: at), kind: TimelineKind(rawValue: kind), endpoint: endpoint,
                who: who, messageId: messageId, rule: rule, detail: detail, body: body)
            e.sinceIntakeMs = since.map(Int.init)
            e.messageType = type
            e.delayMs = delay.map(Int.init)
            e.answers = answers
            e.configuration = configuration
            e.met = met.map(Int.init)
            out.append((id, e))
        }
        return out
    }

    private static func audit(
        _ db: PostgresConnection, logger: Logger, conversationId: String?, withoutConversation: Bool, limit: Int
    ) async throws -> [AuditRecord] {
        let columns = "id, at, who, action, reason, conversation_id, endpoint, message_id, parked_id, detail"
        var query: PostgresQuery
        if let conversationId {
            query = "SELECT \(unescaped: columns) FROM audit WHERE conversation_id = \(conversationId) ORDER BY id LIMIT \(limit)"
        } else {
            query = "SELECT \(unescaped: columns) FROM audit \(unescaped: withoutConversation ? "WHERE conversation_id IS NULL" : "") ORDER BY id DESC LIMIT \(limit)"
        }
        var out: [AuditRecord] = []
        for try await (id, at, who, action, reason, conversation, endpoint, messageId, parkedId, detail) in try await db.query(query, logger: logger)
            .decode((Int64, Double, String, String, String, String?, String?, String?, String, String).self)
        {
            out.append(AuditRecord(
                id: id, at: Date(timeIntervalSince1970: at), who: who, action: action, reason: reason, conversationId: conversation,
                endpoint: endpoint, messageId: messageId, parkedId: parkedId, detail: detail))
        }
        return out
    }
}
