import Foundation
import GRDB

extension SQLiteStore: ParkedStore {
    package func park(_ rows: [ParkedRow]) throws {
        try pool.write { db in
            let insert = try db.cachedStatement(sql: """
                INSERT OR IGNORE INTO parked
                    (id, parked_at, reason, reason_group, stage, origin, endpoint, ticket, message_id, properties, body)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """)
            var written: Set<String> = []
            for r in rows {
                var id = r.id
                var n = 1
                while true {
                    try insert.execute(arguments: [
                        id, r.parkedAt.timeIntervalSince1970, r.reason, r.reasonGroup, r.stage, r.origin, r.endpoint, r.ticket,
                        r.messageId, r.properties, r.body,
                    ])
                    if db.changesCount > 0 {
                        written.insert(id)
                        break
                    }
                    if r.redelivered && !written.contains(id) { break }
                    n += 1
                    id = "\(r.id)-\(n)"
                }
            }
        }
    }

    package func parkedTotal() throws -> Int {
        try pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM parked") ?? 0 }
    }

    package func parkedCounts() async throws -> ParkedCounts {
        try await pool.read { db in
            var c = ParkedCounts()
            for row in try Row.fetchAll(db, sql: "SELECT reason_group, count(*) AS n FROM parked GROUP BY reason_group ORDER BY n DESC, reason_group") {
                c.groups.append((row["reason_group"], row["n"]))
                c.total += row["n"] as Int
            }
            for row in try Row.fetchAll(db, sql: "SELECT coalesce(endpoint, '') AS e, count(*) AS n FROM parked GROUP BY endpoint") {
                c.endpoints[row["e"]] = row["n"]
            }
            return c
        }
    }

    package func parked(_ q: ParkedQuery) async throws -> [ParkedRow] {
        try await pool.read { db in
            let body = q.excerpt.map { "substr(body, 1, \(max(0, $0)))" } ?? "body"
            var sql = "SELECT seq, id, parked_at, reason, reason_group, stage, origin, endpoint, ticket, message_id, properties, \(body) AS body, length(body) AS bytes FROM parked WHERE seq > ?"
            var arguments: StatementArguments = [q.after]
            if let group = q.group {
                sql += " AND reason_group = ?"
                _ = arguments.append(contentsOf: [group])
            }
            if let ids = q.ids {
                sql += " AND id IN (\(ids.map { _ in "?" }.joined(separator: ",")))"
                _ = arguments.append(contentsOf: StatementArguments(ids))
            }
            sql += " ORDER BY seq LIMIT ?"
            _ = arguments.append(contentsOf: [q.limit])
            return try Row.fetchAll(db, sql: sql, arguments: arguments).map { row in
                ParkedRow(
                    seq: row["seq"], id: row["id"], parkedAt: Date(timeIntervalSince1970: row["parked_at"]), reason: row["reason"],
                    reasonGroup: row["reason_group"], stage: row["stage"], origin: row["origin"], endpoint: row["endpoint"],
                    ticket: row["ticket"], messageId: row["message_id"], properties: row["properties"], body: row["body"] ?? Data(),
                    bytes: row["bytes"])
            }
        }
    }

    package func removeParked(id: String) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM parked WHERE id = ?", arguments: [id])
            return db.changesCount > 0
        }
    }
}
