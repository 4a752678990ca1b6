import Foundation
import GRDB
import JSONPath
import Rules

// Retention, the failed-message report and the fleet's membership table.
extension SQLiteStore {
    /// Without indexes by age (they would cost every commit): processed ids and outbox rows are written in
    /// time order, so the oldest are the first by rowid; conversations are found by a scan in a read
    /// transaction, which never blocks the writer.
    package func prune(now: Date, retention: Settings.Retention, limit: Int) throws -> Pruned {
        let day = 86_400.0
        let t = now.timeIntervalSince1970
        let old = try pool.read { db in
            try String.fetchAll(
                db, sql: "SELECT id FROM conversation WHERE updated_at < ? LIMIT ?",
                arguments: [t - Double(retention.conversationsDays) * day, limit])
        }
        let pruned = try pool.write { db -> Pruned in
            var p = Pruned()
            /// Deletes the first rows by rowid while they are older than `cutoff`.
            func oldest(_ table: String, _ column: String, _ cutoff: Double) throws -> Int {
                let rows = try Row.fetchAll(db, sql: "SELECT rowid, \(column) AS t FROM \(table) ORDER BY rowid LIMIT ?", arguments: [limit])
                let expired = rows.prefix { ($0["t"] as Double) < cutoff }.map { $0["rowid"] as Int64 }
                guard let last = expired.last else { return 0 }
                try db.execute(sql: "DELETE FROM \(table) WHERE rowid <= ?", arguments: [last])
                return expired.count
            }
            // An outbound message is kept while an ack may still answer it (`Commit.answered`): answered
            // ones go after `bodiesDays`, the others with the conversations' retention (whichever is longer).
            try db.execute(
                sql: "DELETE FROM outbox WHERE rowid IN (SELECT rowid FROM outbox WHERE answered_at < ? LIMIT ?)",
                arguments: [t - Double(retention.bodiesDays) * day, limit])
            p.bodies = db.changesCount
            p.bodies += try oldest("outbox", "created_at", t - Double(max(retention.bodiesDays, retention.conversationsDays)) * day)
            p.processed = try oldest("processed", "processed_at", t - Double(retention.dedupeDays) * day)
            for id in old {
                // Still old inside the write transaction (a commit may have touched it since the scan).
                guard let updated = try Double.fetchOne(db, sql: "SELECT updated_at FROM conversation WHERE id = ?", arguments: [id]),
                    updated < t - Double(retention.conversationsDays) * day
                else { continue }
                // Along the conversation's chain of rows (no index by conversation: schema v13).
                var next = try Int64.fetchOne(db, sql: "SELECT last_timeline FROM conversation WHERE id = ?", arguments: [id])
                while let row = next {
                    next = try Int64.fetchOne(db.cachedStatement(sql: "SELECT prev FROM timeline_entries WHERE id = ?"), arguments: [row])
                    try db.cachedStatement(sql: "DELETE FROM timeline_entries WHERE id = ?").execute(arguments: [row])
                }
                for table in ["reference", "attribute", "counter", "timeline"] {
                    try db.execute(sql: "DELETE FROM \(table) WHERE conversation_id = ?", arguments: [id])
                }
                try db.execute(sql: "DELETE FROM conversation WHERE id = ?", arguments: [id])
                p.conversations += 1
            }
            return p
        }
        if pruned.conversations > 0 {
            cache.withLock { c in
                c.generation += 1
                c.conversations.removeAll()
                c.byReference.removeAll()
            }
        }
        return pruned
    }

    package func failedOutbound(limit: Int) throws -> (count: Int, newest: [FailedOutbound]) {
        try pool.read { db in
            let count = try Int.fetchOne(db, sql: "SELECT count(*) FROM outbox WHERE failed_at IS NOT NULL") ?? 0
            let rows = try Row.fetchAll(
                db, sql: "SELECT * FROM outbox WHERE failed_at IS NOT NULL ORDER BY failed_at DESC LIMIT ?", arguments: [limit])
            return (count, rows.map {
                FailedOutbound(outbound: Self.outbound($0), failedAt: Date(timeIntervalSince1970: $0["failed_at"]), failure: $0["failure"] ?? "")
            })
        }
    }

    package func heartbeat(member: String, ttl: TimeInterval) throws -> [String] {
        let now = Date().timeIntervalSince1970
        return try pool.write { db in
            try db.cachedStatement(
                sql: "INSERT INTO member (id, seen_at) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at"
            ).execute(arguments: [member, now])
            try db.cachedStatement(sql: "DELETE FROM member WHERE seen_at < ?").execute(arguments: [now - ttl * 10])
            return MemberGroup.peers(of: member, among: try String.fetchAll(
                db.cachedStatement(sql: "SELECT id FROM member WHERE seen_at >= ? ORDER BY id"), arguments: [now - ttl]))
        }
    }

    package func leave(member: String) throws {
        try pool.write { db in
            try db.cachedStatement(sql: "DELETE FROM member WHERE id = ?").execute(arguments: [member])
        }
    }
}
