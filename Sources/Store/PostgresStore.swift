import Foundation
import JSONPath
import Logging
import PostgresNIO
import Rules
import ServiceLifecycle

/// PostgreSQL, through postgres-nio: the store for a fleet, where several store processes (on several
/// machines) serve the workers at once. Same tables and the same contract as `SQLiteStore`; the
/// conversation row is locked (`FOR UPDATE`) while a commit checks its version, and each commit of a
/// batch runs under its own savepoint, so a stale one is undone alone.
///
/// Opening has two steps and no hidden task: `init` only reads the URL; `prepare()` checks the server
/// answers and brings the schema up to date; the connection pool runs as a `Service` of the process's
/// group (`run()`), placed before the services that use the store so it stops after them. A program
/// without a group (a test, the benchmark) uses `standalone`.
///
/// The `ConversationStore` protocol is synchronous (workers are blocking threads around rabbitmq-c): each
/// of its calls runs the async client and waits for it, bounded by `timeout`. Call it from those threads
/// or through `Offload`, never from a Swift concurrency thread. `AdminStore` is async.
package final class PostgresStore: ConversationStore, Service {
    let client: PostgresClient
    let logger: Logger
    private let timeout: TimeInterval
    private let probe: PostgresConnection.Configuration
    private let schema: String?
    /// Only for `standalone`: the pool's run, ended when the store goes.
    private let ownPool: Task<Void, Never>?
    package let redactedURL: String

    /// The store `url` names, not yet connected: `prepare()` it, then run it in the process's service group.
    package convenience init(url: String, timeout: TimeInterval = 30, logger: Logger) throws {
        try self.init(url: url, timeout: timeout, logger: logger, ownPool: false)
    }

    /// For a program without a service group (a test, the benchmark): prepared, with the pool running on
    /// a task of its own for as long as the store lives.
    package static func standalone(url: String, timeout: TimeInterval = 30, logger: Logger) throws -> PostgresStore {
        let store = try PostgresStore(url: url, timeout: timeout, logger: logger, ownPool: true)
        try store.blocking { try await store.prepare() }
        return store
    }

    private init(url: String, timeout: TimeInterval, logger: Logger, ownPool runsItsPool: Bool) throws {
        guard let u = URLComponents(string: url), let host = u.host, ["postgres", "postgresql"].contains(u.scheme ?? "") else {
            throw StoreError("not a PostgreSQL URL (expected postgres://user:password@host:port/database)")
        }
        let database = u.path.hasPrefix("/") ? String(u.path.dropFirst()) : u.path
        var config = PostgresClient.Configuration(
            host: host, port: u.port ?? 5432, username: u.user ?? "postgres", password: u.password,
            database: database.isEmpty ? nil : database, tls: .disable)
        // TLS with ?sslmode=require (or verify-ca, verify-full): TLS 1.2 or later, and the server's
        // certificate is always verified, host name included (stricter than libpq's "require"), against
        // the system's CAs or the PEM file ?sslrootcert=PATH names.
        let query = Dictionary(u.queryItems?.map { ($0.name, $0.value ?? "") } ?? [], uniquingKeysWith: { _, last in last })
        var tlsConfiguration: TLSConfiguration?
        switch query["sslmode"] ?? "disable" {
        case "disable": break
        case "require", "verify-ca", "verify-full":
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.minimumTLSVersion = .tlsv12
            tls.certificateVerification = .fullVerification
            if let ca = query["sslrootcert"], !ca.isEmpty { tls.trustRoots = .file(ca) }
            config.tls = .require(tls)
            tlsConfiguration = tls
        case let other:
            throw StoreError("store_url: sslmode '\(other)' is not supported (disable, require, verify-ca, verify-full)")
        }
        // ?schema=NAME keeps Switchboard's tables in their own schema (created when missing).
        var schema: String?
        if let name = query["schema"] {
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
        self.schema = schema
        var shown = u
        if shown.password != nil { shown.password = "***" }
        redactedURL = shown.string ?? "postgres://"
        var probe = PostgresConnection.Configuration(
            host: host, port: u.port ?? 5432, username: config.username, password: config.password,
            database: config.database,
            tls: try tlsConfiguration.map { .require(try NIOSSLContext(configuration: $0)) } ?? .disable)
        probe.options.additionalStartupParameters = config.options.additionalStartupParameters
        probe.options.connectTimeout = .seconds(10)
        self.probe = probe
        ownPool = runsItsPool ? Task { [client] in await client.run() } : nil
    }

    deinit {
        ownPool?.cancel()
    }

    /// Connects once, on a connection of its own (the pool retries a failing connection quietly, while
    /// this says at once why it fails: refused, bad password, certificate not trusted, ...), and migrates
    /// the schema on it. Before the pool runs, or beside it.
    package func prepare() async throws {
        do {
            let connection = try await PostgresConnection.connect(configuration: probe, id: 0, logger: logger)
            do {
                try await Self.migrate(connection, schema: schema, logger: logger)
            } catch {
                try? await connection.close()
                throw error
            }
            try await connection.close()
        } catch {
            throw storeError(error)
        }
    }

    /// The connection pool, for as long as the process's service group runs (ends at graceful shutdown).
    package func run() async {
        await client.run()
    }

    // MARK: - Schema

    private static func migrate(_ connection: PostgresConnection, schema: String?, logger: Logger) async throws {
        try await connection.withTransaction(logger: logger) { db in
            // Several store processes may start at once: one migrates, the others wait for it.
            try await db.query("SELECT pg_advisory_xact_lock(7355608001)", logger: logger)
            if let schema {
                try await db.query(PostgresQuery(unsafeSQL: "CREATE SCHEMA IF NOT EXISTS \(schema)"), logger: logger)
            }
            try await db.query(
                "CREATE TABLE IF NOT EXISTS schema_version (version INT PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)",
                logger: logger)
            var applied: Set<Int> = []
            for try await v in try await db.query("SELECT version FROM schema_version", logger: logger).decode(Int.self) { applied.insert(v) }
            if let newest = applied.max(), newest > PostgresSchema.migrations.count {
                throw StoreError(
                    "the PostgreSQL schema is at version \(newest), newer than this release knows (\(PostgresSchema.migrations.count)): run the newer release, or restore the database")
            }
            for (index, migration) in PostgresSchema.migrations.enumerated() where !applied.contains(index + 1) {
                // The extended protocol takes one statement at a time.
                for statement in migration.sql.split(separator: ";").map({ $0.trimmingCharacters(in: .whitespacesAndNewlines) })
                where !statement.isEmpty {
                    try await db.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await db.query(
                    "INSERT INTO schema_version (version, name, applied_at) VALUES (\(index + 1), \(migration.name), extract(epoch from now()))",
                    logger: logger)
                logger.info("PostgreSQL schema migrated", metadata: ["sb.version": "\(index + 1)", "sb.migration": "\(migration.name)"])
            }
            for function in PostgresSchema.functions {
                try await db.query(PostgresQuery(unsafeSQL: function), logger: logger)
            }
        }
    }

    // MARK: - The synchronous bridge

    private final class Outcome<T>: @unchecked Sendable {
        var result: Result<T, any Error>?
    }

    func blocking<T>(_ body: @escaping @Sendable () async throws -> sending T) throws -> T {
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
        } catch {
            throw storeError(error)
        }
    }

    /// Any error of a call as the store's error: the server's message and whether trying again helps.
    func storeError(_ error: any Error) -> StoreError {
        switch error {
        case let e as StoreError:
            return e
        case let e as PSQLError:
            return StoreError("PostgreSQL at \(redactedURL): \(Self.describe(e))", code: Self.code(e))
        case let e as PostgresTransactionError:
            let cause = [e.beginError, e.closureError, e.commitError].compactMap { $0 }.first
            return StoreError(
                "PostgreSQL at \(redactedURL): \((cause as? PSQLError).map(Self.describe) ?? cause.map { "\($0)" } ?? "transaction failed")",
                code: (cause as? PSQLError).map(Self.code) ?? .unavailable)
        default:
            return StoreError("PostgreSQL at \(redactedURL): \(error)")
        }
    }

    /// Data exceptions (22: a value PostgreSQL cannot hold, such as U+0000 in text), integrity violations
    /// (23) and limits (54) refuse the content; everything else (connections, deadlocks, resources) heals.
    static func code(_ e: PSQLError) -> StoreError.Code {
        guard let state = e.serverInfo?[.sqlState] else { return .unavailable }
        return ["22", "23", "54"].contains(String(state.prefix(2))) ? .refused : .unavailable
    }

    /// The server's own message and SQLSTATE, or the client's error code; never the whole query.
    static func describe(_ e: PSQLError) -> String {
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
        try json("SELECT sb_find(\(try Self.text(batch))::jsonb)::text")
    }

    package func conversations(ids: [String]) throws -> [ConversationSnapshot?] {
        try json("SELECT coalesce(jsonb_agg(sb_snapshot(x.id) ORDER BY x.n), '[]')::text FROM jsonb_array_elements_text(\(try Self.text(ids))::jsonb) WITH ORDINALITY AS x(id, n)")
    }

    package func outbound(messageIds: [String]) throws -> [StoredOutbound?] {
        try json("SELECT coalesce(jsonb_agg((SELECT sb_outbound_json(o) FROM outbox o WHERE o.message_id = x.id) ORDER BY x.n), '[]')::text FROM jsonb_array_elements_text(\(try Self.text(messageIds))::jsonb) WITH ORDINALITY AS x(id, n)")
    }

    package func prune(now: Date, retention: Settings.Retention, limit: Int) throws -> Pruned {
        let t = now.timeIntervalSince1970
        let bodies = t - Double(retention.bodiesDays) * 86_400
        let unanswered = t - Double(max(retention.bodiesDays, retention.conversationsDays)) * 86_400
        let dedupe = t - Double(retention.dedupeDays) * 86_400
        let conversations = t - Double(retention.conversationsDays) * 86_400
        // One statement: each part deletes at most `limit` rows; a conversation goes with what it holds.
        // An outbound message is kept while an ack may still answer it (`Commit.answered`).
        return try json("""
            WITH o AS (DELETE FROM outbox WHERE message_id IN (
                       (SELECT message_id FROM outbox WHERE answered_at < \(bodies) LIMIT \(limit))
                       UNION (SELECT message_id FROM outbox WHERE created_at < \(unanswered) LIMIT \(limit))) RETURNING 1),
                 p AS (DELETE FROM processed WHERE (endpoint, message_id) IN (
                       SELECT endpoint, message_id FROM processed WHERE processed_at < \(dedupe) LIMIT \(limit)) RETURNING 1),
                 c AS (SELECT id FROM conversation WHERE updated_at < \(conversations) LIMIT \(limit) FOR UPDATE SKIP LOCKED),
                 r AS (DELETE FROM reference WHERE conversation_id IN (SELECT id FROM c)),
                 a AS (DELETE FROM attribute WHERE conversation_id IN (SELECT id FROM c)),
                 n AS (DELETE FROM counter WHERE conversation_id IN (SELECT id FROM c)),
                 t AS (DELETE FROM timeline WHERE conversation_id IN (SELECT id FROM c)),
                 d AS (DELETE FROM conversation WHERE id IN (SELECT id FROM c) RETURNING 1)
            SELECT jsonb_build_object('bodies', (SELECT count(*) FROM o), 'processed', (SELECT count(*) FROM p),
                                      'conversations', (SELECT count(*) FROM d))::text
            """)
    }

    package func failedOutbound(limit: Int) throws -> (count: Int, newest: [FailedOutbound]) {
        struct Item: Decodable { var outbound: StoredOutbound; var failedAt: Double; var failure: String }
        struct Answer: Decodable { var count: Int; var newest: [Item] }
        let a: Answer = try json("""
            SELECT jsonb_build_object(
              'count', (SELECT count(*) FROM outbox WHERE failed_at IS NOT NULL),
              'newest', coalesce((SELECT jsonb_agg(jsonb_build_object(
                  'outbound', sb_outbound_json(o), 'failedAt', o.failed_at, 'failure', coalesce(o.failure, ''))
                  ORDER BY o.failed_at DESC)
                FROM outbox o WHERE o.message_id IN (
                  SELECT message_id FROM outbox WHERE failed_at IS NOT NULL ORDER BY failed_at DESC LIMIT \(limit))), '[]'))::text
            """)
        return (a.count, a.newest.map { FailedOutbound(outbound: $0.outbound, failedAt: Date(timeIntervalSince1970: $0.failedAt), failure: $0.failure) })
    }

    package func conversation(id: String) throws -> ConversationSnapshot? {
        try json("SELECT coalesce(sb_snapshot(\(id)), 'null'::jsonb)::text")
    }

    /// Runs a query whose one row and column is JSON text, and decodes it.
    private func json<T: Decodable & Sendable>(_ query: PostgresQuery) throws -> T {
        let logger = self.logger
        let text: String = try blocking { [client] in
            var out = "null"
            for try await v in try await client.query(query, logger: logger).decode(String.self) { out = v }
            return out
        }
        do {
            return try Self.decoder.decode(T.self, from: Data(text.utf8))
        } catch {
            throw StoreError("unreadable answer from PostgreSQL: \(error)")
        }
    }

    private static func text(_ value: some Encodable) throws -> String {
        String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    // Dates travel as seconds since 1970, as the tables hold them.
    private static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.dateEncodingStrategy = .secondsSince1970
        return e
    }()

    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .secondsSince1970
        return d
    }()

    static func references(_ db: PostgresConnection, _ id: String, logger: Logger) async throws -> [String: String] {
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

    package func outbound(messageId: String) throws -> StoredOutbound? {
        try json("SELECT coalesce((SELECT sb_outbound_json(o) FROM outbox o WHERE o.message_id = \(messageId)), 'null'::jsonb)::text")
    }

    package func timeline(conversationId: String) throws -> [TimelineEntry] {
        let logger = self.logger
        return try blocking { [client] in
            try await client.withConnection { db in
                try await Self.entries(db, logger: logger, conversationId: conversationId, before: nil, newestFirst: false, limit: Int.max)
                    .map(\.entry)
            }
        }
    }

    // MARK: - Membership

    package func heartbeat(member: String, ttl: TimeInterval) throws -> [String] {
        let logger = self.logger
        return try blocking { [client] in
            // The database's clock, not this host's: store processes on several machines agree on who is live
            // (now(): the transaction's time, the same in its three statements).
            try await client.withTransaction(logger: logger) { db in
                try await db.query(
                    "INSERT INTO member (id, seen_at) VALUES (\(member), extract(epoch from now())) ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
                    logger: logger)
                try await db.query("DELETE FROM member WHERE seen_at < extract(epoch from now()) - \(ttl * 10)", logger: logger)
                var members: [String] = []
                for try await id in try await db.query(
                    "SELECT id FROM member WHERE seen_at >= extract(epoch from now()) - \(ttl) ORDER BY id COLLATE \"C\"", logger: logger
                ).decode(String.self) {
                    members.append(id)
                }
                return MemberGroup.peers(of: member, among: members)
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
        let outcomes: [CommitOutcome] = try json("SELECT sb_commit(\(try Self.text(commits))::jsonb)::text")
        guard outcomes.count == commits.count else {
            throw StoreError("PostgreSQL answered \(outcomes.count) outcome(s) for \(commits.count) commit(s)")
        }
        return outcomes
    }

    /// Several callers' commits in one transaction and one round trip; should that fail, each caller's
    /// commits go again alone, so what the database refuses for one caller's content fails only that caller.
    package func commit(groups: [[Commit]]) -> [Result<[CommitOutcome], any Error>] {
        if groups.count > 1 {
            do {
                return try commitTogether(groups).map { .success($0) }
            } catch {
                logger.debug("group commit failed, each caller's alone", metadata: ["sb.error": "\(error)"])
            }
        }
        return groups.map { group in Result { try commit(group) } }
    }

    /// `sb_commit_groups`: each caller's commits as `commit` applies them (a chain of its own), all in one
    /// transaction, or none.
    package func commitTogether(_ groups: [[Commit]]) throws -> [[CommitOutcome]] {
        let all: [[CommitOutcome]] = try json("SELECT sb_commit_groups(\(try Self.text(groups))::jsonb)::text")
        guard all.count == groups.count, zip(all, groups).allSatisfy({ $0.count == $1.count }) else {
            throw StoreError("PostgreSQL answered \(all.map(\.count)) outcome(s) for \(groups.map(\.count)) commit(s)")
        }
        return all
    }
}
