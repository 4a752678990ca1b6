import Foundation
import JSONPath
import Logging
import PostgresNIO
import Rules

/// PostgreSQL, through postgres-nio: the store for a fleet, where several store processes (on several
/// machines) serve the workers at once. Same tables and the same contract as `SQLiteStore`; the
/// conversation row is locked (`FOR UPDATE`) while a commit checks its version, and each commit of a
/// batch runs under its own savepoint, so a stale one is undone alone.
///
/// The protocol is synchronous (workers are blocking threads around rabbitmq-c); each call runs the
/// async client on its own task and waits for it, bounded by `timeout`. Never call it from a Swift
/// concurrency thread.
package final class PostgresStore: ConversationStore {
    private let client: PostgresClient
    private let runner: Task<Void, Never>
    private let logger: Logger
    private let timeout: TimeInterval
    package let redactedURL: String

    package init(url: String, timeout: TimeInterval = 30, logger: Logger) throws {
        guard let u = URLComponents(string: url), let host = u.host, ["postgres", "postgresql"].contains(u.scheme ?? "") else {
            throw StoreError("not a PostgreSQL URL (expected postgres://user:password@host:port/database)")
        }
        let database = u.path.hasPrefix("/") ? String(u.path.dropFirst()) : u.path
        var config = PostgresClient.Configuration(
            host: host, port: u.port ?? 5432, username: u.user ?? "postgres", password: u.password,
            database: database.isEmpty ? nil : database, tls: .disable)
        // A TLS connection is asked for with ?sslmode=require; the server's certificate is then verified
        // against the system's CAs.
        if u.queryItems?.first(where: { $0.name == "sslmode" })?.value == "require" {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.minimumTLSVersion = .tlsv12
            config.tls = .require(tls)
        }
        // ?schema=NAME keeps Switchboard's tables in their own schema (created when missing).
        var schema: String?
        if let name = u.queryItems?.first(where: { $0.name == "schema" })?.value {
            guard !name.isEmpty, name.utf8.allSatisfy({ ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95 }) else {
                throw StoreError("store_url: schema '\(name)' must be lower-case letters, digits and _")
            }
            config.options.additionalStartupParameters = [("search_path", name)]
            schema = name
        }
        config.options.maximumConnections = 8
        config.options.connectTimeout = .seconds(10)
        let client = PostgresClient(configuration: config, backgroundLogger: logger)
        self.client = client
        self.logger = logger
        self.timeout = timeout
        var shown = u
        if shown.password != nil { shown.password = "***" }
        redactedURL = shown.string ?? "postgres://"
        runner = Task { await client.run() }
        let chosen = schema
        try blocking { try await Self.migrate(client, schema: chosen, logger: logger) }
    }

    deinit {
        runner.cancel()
    }

    // MARK: - Schema

    private static func migrate(_ client: PostgresClient, schema: String?, logger: Logger) async throws {
        try await client.withTransaction(logger: logger) { db in
            // Several store processes may start at once: one migrates, the others wait for it.
            try await db.query("SELECT pg_advisory_xact_lock(7355608001)", logger: logger)
            if let schema {
                try await db.query(PostgresQuery(unsafeSQL: "CREATE SCHEMA IF NOT EXISTS \(schema)"), logger: logger)
            }
            // The extended protocol takes one statement at a time.
            for statement in schemaSQL.split(separator: ";").map({ $0.trimmingCharacters(in: .whitespacesAndNewlines) })
            where !statement.isEmpty {
                try await db.query(PostgresQuery(unsafeSQL: statement), logger: logger)
            }
        }
    }

    private static let schemaSQL = """
                    CREATE TABLE IF NOT EXISTS conversation (
                        id TEXT PRIMARY KEY,
                        version BIGINT NOT NULL,
                        created_at DOUBLE PRECISION NOT NULL,
                        updated_at DOUBLE PRECISION NOT NULL);
                    CREATE TABLE IF NOT EXISTS reference (
                        endpoint TEXT NOT NULL,
                        ticket_id TEXT NOT NULL,
                        conversation_id TEXT NOT NULL REFERENCES conversation(id),
                        created_at DOUBLE PRECISION NOT NULL,
                        seq BIGSERIAL,
                        PRIMARY KEY (endpoint, ticket_id));
                    CREATE INDEX IF NOT EXISTS reference_by_conversation ON reference(conversation_id);
                    CREATE TABLE IF NOT EXISTS processed (
                        endpoint TEXT NOT NULL,
                        message_id TEXT NOT NULL,
                        conversation_id TEXT NOT NULL,
                        processed_at DOUBLE PRECISION NOT NULL,
                        PRIMARY KEY (endpoint, message_id));
                    CREATE TABLE IF NOT EXISTS outbox (
                        message_id TEXT PRIMARY KEY,
                        conversation_id TEXT NOT NULL,
                        inbound_endpoint TEXT NOT NULL,
                        inbound_message_id TEXT NOT NULL,
                        seq BIGINT NOT NULL,
                        target TEXT NOT NULL,
                        type TEXT NOT NULL,
                        rule TEXT NOT NULL,
                        body BYTEA NOT NULL,
                        delay_ms BIGINT NOT NULL DEFAULT 0,
                        kind TEXT NOT NULL DEFAULT 'message',
                        created_at DOUBLE PRECISION NOT NULL);
                    CREATE INDEX IF NOT EXISTS outbox_by_inbound ON outbox(inbound_endpoint, inbound_message_id, seq);
                    CREATE TABLE IF NOT EXISTS timeline (
                        id BIGSERIAL PRIMARY KEY,
                        conversation_id TEXT NOT NULL,
                        at DOUBLE PRECISION NOT NULL,
                        kind TEXT NOT NULL,
                        endpoint TEXT,
                        who TEXT,
                        message_id TEXT,
                        rule TEXT,
                        detail TEXT NOT NULL);
                    CREATE INDEX IF NOT EXISTS timeline_by_conversation ON timeline(conversation_id, id);
                    CREATE TABLE IF NOT EXISTS attribute (
                        conversation_id TEXT NOT NULL,
                        name TEXT NOT NULL,
                        value TEXT NOT NULL,
                        updated_at DOUBLE PRECISION NOT NULL,
                        PRIMARY KEY (conversation_id, name));
                    CREATE TABLE IF NOT EXISTS counter (
                        conversation_id TEXT NOT NULL,
                        name TEXT NOT NULL,
                        value BIGINT NOT NULL,
                        updated_at DOUBLE PRECISION NOT NULL,
                        PRIMARY KEY (conversation_id, name));
                    CREATE TABLE IF NOT EXISTS member (id TEXT PRIMARY KEY, seen_at DOUBLE PRECISION NOT NULL);
                    """

    // MARK: - The synchronous bridge

    private final class Outcome<T>: @unchecked Sendable {
        var result: Result<T, any Error>?
    }

    private func blocking<T>(_ body: @escaping @Sendable () async throws -> sending T) throws -> T {
        let outcome = Outcome<T>()
        let done = DispatchSemaphore(value: 0)
        Task {
            do {
                outcome.result = .success(try await body())
            } catch {
                outcome.result = .failure(error)
            }
            done.signal()
        }
        guard done.wait(timeout: .now() + timeout) == .success, let result = outcome.result else {
            throw StoreError("PostgreSQL at \(redactedURL) did not answer within \(Int(timeout)) s")
        }
        do {
            return try result.get()
        } catch let e as StoreError {
            throw e
        } catch let e as PSQLError {
            throw StoreError("PostgreSQL at \(redactedURL): \(Self.describe(e))")
        } catch let e as PostgresTransactionError {
            let cause = [e.beginError, e.closureError, e.commitError].compactMap { $0 }.first
            throw StoreError("PostgreSQL at \(redactedURL): \((cause as? PSQLError).map(Self.describe) ?? cause.map { "\($0)" } ?? "transaction failed")")
        } catch {
            throw StoreError("PostgreSQL at \(redactedURL): \(error)")
        }
    }

    /// The server's own message and SQLSTATE, or the client's error code; never the whole query.
    private static func describe(_ e: PSQLError) -> String {
        if let message = e.serverInfo?[.message] {
            return "\(message) (SQLSTATE \(e.serverInfo?[.sqlState] ?? "?"))"
        }
        return "\(e.code)" + (e.underlying.map { ": \($0)" } ?? "")
    }

    // MARK: - Reads

    package func find(_ refs: [TicketRef]) throws -> ConversationSnapshot? {
        try find(batch: [refs])[0]
    }

    package func find(batch: [[TicketRef]]) throws -> [ConversationSnapshot?] {
        let logger = self.logger
        return try blocking { [client] in
            try await client.withConnection { db in
                var out: [ConversationSnapshot?] = []
                for refs in batch {
                    var found: ConversationSnapshot?
                    for ref in refs {
                        let rows = try await db.query(
                            "SELECT conversation_id FROM reference WHERE endpoint = \(ref.endpoint) AND ticket_id = \(ref.ticketId)",
                            logger: logger)
                        var id: String?
                        for try await v in rows.decode(String.self) { id = v }
                        if let id {
                            found = try await Self.snapshot(db, id: id, logger: logger)
                            break
                        }
                    }
                    out.append(found)
                }
                return out
            }
        }
    }

    package func conversation(id: String) throws -> ConversationSnapshot? {
        let logger = self.logger
        return try blocking { [client] in
            try await client.withConnection { db in try await Self.snapshot(db, id: id, logger: logger) }
        }
    }

    private static func snapshot(_ db: PostgresConnection, id: String, logger: Logger) async throws -> ConversationSnapshot? {
        var version: Int?
        for try await v in try await db.query("SELECT version FROM conversation WHERE id = \(id)", logger: logger).decode(Int.self) {
            version = v
        }
        guard let version else { return nil }
        var attributes: [String: JSON] = [:]
        for try await (name, text) in try await db.query(
            "SELECT name, value FROM attribute WHERE conversation_id = \(id)", logger: logger
        ).decode((String, String).self) {
            attributes[name] = (try? JSON.parse(text)) ?? .string(text)
        }
        var counters: [String: Int] = [:]
        for try await (name, value) in try await db.query(
            "SELECT name, value FROM counter WHERE conversation_id = \(id)", logger: logger
        ).decode((String, Int).self) {
            counters[name] = value
        }
        return ConversationSnapshot(
            id: id, version: version, references: try await references(db, id, logger: logger), attributes: attributes,
            counters: counters)
    }

    private static func references(_ db: PostgresConnection, _ id: String, logger: Logger) async throws -> [String: String] {
        var refs: [String: String] = [:]
        for try await (endpoint, ticket) in try await db.query(
            "SELECT endpoint, ticket_id FROM reference WHERE conversation_id = \(id) ORDER BY seq", logger: logger
        ).decode((String, String).self) {
            refs[endpoint] = ticket
        }
        return refs
    }

    package func references(conversationId: String) throws -> [String: String] {
        let logger = self.logger
        return try blocking { [client] in
            try await client.withConnection { db in try await Self.references(db, conversationId, logger: logger) }
        }
    }

    private static let outboxColumns = "message_id, conversation_id, inbound_endpoint, inbound_message_id, target, type, rule, body, delay_ms, kind"

    private static func outbound(_ rows: PostgresRowSequence) async throws -> [StoredOutbound] {
        var out: [StoredOutbound] = []
        for try await (id, conversation, endpoint, inbound, target, type, rule, body, delay, kind) in rows.decode(
            (String, String, String, String, String, String, String, Data, Int, String).self)
        {
            out.append(StoredOutbound(
                messageId: id, conversationId: conversation, inbound: InboundKey(endpoint, inbound), target: target,
                type: type, rule: rule, body: body, delayMs: delay, kind: StoredOutbound.Kind(rawValue: kind) ?? .message))
        }
        return out
    }

    package func outbound(messageId: String) throws -> StoredOutbound? {
        let logger = self.logger
        return try blocking { [client] in
            try await client.withConnection { db in
                try await Self.outbound(db.query(
                    "SELECT \(unescaped: Self.outboxColumns) FROM outbox WHERE message_id = \(messageId)", logger: logger)).first
            }
        }
    }

    package func timeline(conversationId: String) throws -> [TimelineEntry] {
        let logger = self.logger
        return try blocking { [client] in
            try await client.withConnection { db in
                var out: [TimelineEntry] = []
                for try await (conversation, at, kind, endpoint, who, messageId, rule, detail) in try await db.query(
                    "SELECT conversation_id, at, kind, endpoint, who, message_id, rule, detail FROM timeline WHERE conversation_id = \(conversationId) ORDER BY id",
                    logger: logger
                ).decode((String, Double, String, String?, String?, String?, String?, String).self) {
                    out.append(TimelineEntry(
                        conversationId: conversation, at: Date(timeIntervalSince1970: at), kind: kind, endpoint: endpoint,
                        who: who, messageId: messageId, rule: rule, detail: detail))
                }
                return out
            }
        }
    }

    // MARK: - Membership

    package func heartbeat(member: String, ttl: TimeInterval) throws -> [String] {
        let logger = self.logger
        return try blocking { [client] in
            let now = Date().timeIntervalSince1970
            return try await client.withTransaction(logger: logger) { db in
                try await db.query(
                    "INSERT INTO member (id, seen_at) VALUES (\(member), \(now)) ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
                    logger: logger)
                try await db.query("DELETE FROM member WHERE seen_at < \(now - ttl * 10)", logger: logger)
                var members: [String] = []
                for try await id in try await db.query(
                    "SELECT id FROM member WHERE seen_at >= \(now - ttl) ORDER BY id COLLATE \"C\"", logger: logger
                ).decode(String.self) {
                    members.append(id)
                }
                return members
            }
        }
    }

    package func leave(member: String) throws {
        let logger = self.logger
        try blocking { [client] in
            try await client.query("DELETE FROM member WHERE id = \(member)", logger: logger)
            return ()
        }
    }

    // MARK: - Commits

    package func commit(_ commits: [Commit]) throws -> [CommitOutcome] {
        let logger = self.logger
        return try blocking { [client] in
            try await client.withTransaction(logger: logger) { db in
                var outcomes: [CommitOutcome] = []
                for c in commits {
                    try await db.query("SAVEPOINT sb_commit", logger: logger)
                    let outcome = try await Self.apply(c, db, logger: logger)
                    if outcome == .stale {
                        try await db.query("ROLLBACK TO SAVEPOINT sb_commit", logger: logger)
                    } else {
                        try await db.query("RELEASE SAVEPOINT sb_commit", logger: logger)
                    }
                    outcomes.append(outcome)
                }
                return outcomes
            }
        }
    }

    private static func duplicate(_ c: Commit, _ db: PostgresConnection, logger: Logger) async throws -> CommitOutcome? {
        var conversation: String?
        for try await id in try await db.query(
            "SELECT conversation_id FROM processed WHERE endpoint = \(c.inbound.endpoint) AND message_id = \(c.inbound.messageId)",
            logger: logger
        ).decode(String.self) {
            conversation = id
        }
        guard let conversation else { return nil }
        let outbox = try await outbound(db.query(
            "SELECT \(unescaped: outboxColumns) FROM outbox WHERE inbound_endpoint = \(c.inbound.endpoint) AND inbound_message_id = \(c.inbound.messageId) ORDER BY seq",
            logger: logger))
        return .duplicate(conversationId: conversation, outbox: outbox)
    }

    private static func apply(_ c: Commit, _ db: PostgresConnection, logger: Logger) async throws -> CommitOutcome {
        if let duplicate = try await duplicate(c, db, logger: logger) { return duplicate }
        let at = c.at.timeIntervalSince1970
        let id = c.conversationId
        var current: Int?
        for try await v in try await db.query("SELECT version FROM conversation WHERE id = \(id) FOR UPDATE", logger: logger).decode(Int.self) {
            current = v
        }
        guard (current ?? 0) == c.expectedVersion else { return .stale }
        let version = c.expectedVersion + 1
        if current == nil {
            // Another store may be creating the same conversation right now: only one insert wins.
            var created = false
            for try await _ in try await db.query(
                "INSERT INTO conversation (id, version, created_at, updated_at) VALUES (\(id), \(version), \(at), \(at)) ON CONFLICT (id) DO NOTHING RETURNING 1",
                logger: logger
            ).decode(Int.self) {
                created = true
            }
            if !created { return .stale }
        } else {
            try await db.query("UPDATE conversation SET version = \(version), updated_at = \(at) WHERE id = \(id)", logger: logger)
        }
        // A reference taken by another conversation meanwhile makes the decision stale.
        for ref in c.newReferences {
            try await db.query(
                "INSERT INTO reference (endpoint, ticket_id, conversation_id, created_at) VALUES (\(ref.endpoint), \(ref.ticketId), \(id), \(at)) ON CONFLICT DO NOTHING",
                logger: logger)
            for try await owner in try await db.query(
                "SELECT conversation_id FROM reference WHERE endpoint = \(ref.endpoint) AND ticket_id = \(ref.ticketId)", logger: logger
            ).decode(String.self) where owner != id {
                return .stale
            }
        }
        var recorded = false
        for try await _ in try await db.query(
            "INSERT INTO processed (endpoint, message_id, conversation_id, processed_at) VALUES (\(c.inbound.endpoint), \(c.inbound.messageId), \(id), \(at)) ON CONFLICT DO NOTHING RETURNING 1",
            logger: logger
        ).decode(Int.self) {
            recorded = true
        }
        // Another store applied the same inbound message meanwhile: ours is undone (stale), and the
        // worker's next attempt finds it applied.
        if !recorded { return .stale }
        for (seq, o) in c.outbox.enumerated() {
            try await db.query(
                """
                INSERT INTO outbox (message_id, conversation_id, inbound_endpoint, inbound_message_id, seq, target, type, rule, body, delay_ms, kind, created_at)
                VALUES (\(o.messageId), \(o.conversationId), \(o.inbound.endpoint), \(o.inbound.messageId), \(seq), \(o.target), \(o.type), \(o.rule), \(o.body), \(o.delayMs), \(o.kind.rawValue), \(at))
                """, logger: logger)
        }
        for (name, value) in c.attributes {
            if let value {
                try await db.query(
                    "INSERT INTO attribute (conversation_id, name, value, updated_at) VALUES (\(id), \(name), \(value.serializedString), \(at)) ON CONFLICT (conversation_id, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                    logger: logger)
            } else {
                try await db.query("DELETE FROM attribute WHERE conversation_id = \(id) AND name = \(name)", logger: logger)
            }
        }
        for (name, value) in c.counters {
            try await db.query(
                "INSERT INTO counter (conversation_id, name, value, updated_at) VALUES (\(id), \(name), \(value), \(at)) ON CONFLICT (conversation_id, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                logger: logger)
        }
        for t in c.timeline {
            try await db.query(
                "INSERT INTO timeline (conversation_id, at, kind, endpoint, who, message_id, rule, detail) VALUES (\(t.conversationId), \(t.at.timeIntervalSince1970), \(t.kind), \(t.endpoint), \(t.who), \(t.messageId), \(t.rule), \(t.detail))",
                logger: logger)
        }
        return .committed(version: version)
    }
}
