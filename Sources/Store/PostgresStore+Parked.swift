import Foundation
import Logging
import PostgresNIO

extension PostgresStore: ParkedStore {
    package func park(_ rows: [ParkedRow]) throws {
        let logger = self.logger
        try blocking { [client] in
            try await client.withTransaction(logger: logger) { db in
                var written: Set<String> = []
                for r in rows {
                    var id = r.id
                    var n = 1
                    while true {
                        var inserted = false
                        for try await _ in try await db.query(
                            """
                            INSERT INTO parked (id, parked_at, reason, reason_group, stage, origin, endpoint, ticket, message_id, properties, body)
                            VALUES (\(id), \(r.parkedAt.timeIntervalSince1970), \(r.reason), \(r.reasonGroup), \(r.stage), \(r.origin),
                                    \(r.endpoint), \(r.ticket), \(r.messageId), \(r.properties), \(r.body))
                            ON CONFLICT (id) DO NOTHING RETURNING seq
                            """, logger: logger
                        ).decode(Int64.self) {
                            inserted = true
                        }
                        if inserted {
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
    }

    package func parkedTotal() throws -> Int {
        let logger = self.logger
        return try blocking { [client] in
            var n = 0
            for try await v in try await client.query("SELECT count(*) FROM parked", logger: logger).decode(Int64.self) { n = Int(v) }
            return n
        }
    }

    package func parkedCounts() async throws -> ParkedCounts {
        try await admin { db, logger in
            var c = ParkedCounts()
            for try await (group, n) in try await db.query(
                "SELECT reason_group, count(*) AS n FROM parked GROUP BY reason_group ORDER BY n DESC, reason_group", logger: logger
            ).decode((String, Int64).self) {
                c.groups.append((group, Int(n)))
                c.total += Int(n)
            }
            for try await (endpoint, n) in try await db.query(
                "SELECT coalesce(endpoint, ''), count(*) FROM parked GROUP BY endpoint", logger: logger
            ).decode((String, Int64).self) {
                c.endpoints[endpoint] = Int(n)
            }
            return c
        }
    }

    package func parked(_ q: ParkedQuery) async throws -> [ParkedRow] {
        try await admin { db, logger in
            let body = q.excerpt.map { "substring(body from 1 for \(max(0, $0)))" } ?? "body"
            var query: PostgresQuery = """
                SELECT seq, id, parked_at, reason, reason_group, stage, origin, endpoint, ticket, message_id, properties,
                       \(unescaped: body), octet_length(body) FROM parked WHERE seq > \(q.after)
                """
            if let group = q.group {
                query.sql += " AND reason_group = $\(query.binds.count + 1)"
                query.binds.append(group)
            }
            if let ids = q.ids {
                query.sql += " AND id = ANY($\(query.binds.count + 1))"
                query.binds.append(ids)
            }
            query.sql += " ORDER BY seq LIMIT \(max(0, q.limit))"
            var out: [ParkedRow] = []
            for try await (seq, id, at, reason, group, stage, origin, endpoint, ticket, messageId, properties, body, bytes) in try await db.query(
                query, logger: logger
            ).decode((Int64, String, Double, String, String, String, String, String?, String?, String?, ByteBuffer, ByteBuffer, Int32).self) {
                out.append(ParkedRow(
                    seq: seq, id: id, parkedAt: Date(timeIntervalSince1970: at), reason: reason, reasonGroup: group, stage: stage,
                    origin: origin, endpoint: endpoint, ticket: ticket, messageId: messageId, properties: Data(buffer: properties),
                    body: Data(buffer: body), bytes: Int(bytes)))
            }
            return out
        }
    }

    package func removeParked(id: String) async throws -> Bool {
        try await admin { db, logger in
            var removed = false
            for try await _ in try await db.query("DELETE FROM parked WHERE id = \(id) RETURNING seq", logger: logger).decode(Int64.self) {
                removed = true
            }
            return removed
        }
    }
}
