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
    let client: PostgresClient
    private let runner: Task<Void, Never>
    let logger: Logger
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
        var shown = u
        if shown.password != nil { shown.password = "***" }
        redactedURL = shown.string ?? "postgres://"
        runner = Task { await client.run() }
        // One connection first, on its own: the pool retries a failing connection quietly, while this
        // says at once why it fails (refused, bad password, certificate not trusted, ...).
        var probe = PostgresConnection.Configuration(
            host: host, port: u.port ?? 5432, username: config.username, password: config.password,
            database: config.database,
            tls: try tlsConfiguration.map { .require(try NIOSSLContext(configuration: $0)) } ?? .disable)
        probe.options.additionalStartupParameters = config.options.additionalStartupParameters
        try blocking { [probe] in
            let connection = try await PostgresConnection.connect(configuration: probe, id: 0, logger: logger)
            try await connection.close()
        }
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
            try await db.query(
                "CREATE TABLE IF NOT EXISTS schema_version (version INT PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)",
                logger: logger)
            var applied: Set<Int> = []
            for try await v in try await db.query("SELECT version FROM schema_version", logger: logger).decode(Int.self) { applied.insert(v) }
            if let newest = applied.max(), newest > migrations.count {
                throw StoreError(
                    "the PostgreSQL schema is at version \(newest), newer than this release knows (\(migrations.count)): run the newer release, or restore the database")
            }
            for (index, migration) in migrations.enumerated() where !applied.contains(index + 1) {
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
            for function in functionsSQL {
                try await db.query(PostgresQuery(unsafeSQL: function), logger: logger)
            }
        }
    }

    /// The hot paths as server-side functions, so a worker's batch is one round trip to the database,
    /// whatever its size. They speak the JSON shapes of the Swift types (Codable): `sb_find` takes
    /// `[[TicketRef]]` and returns `[ConversationSnapshot?]`; `sb_commit` takes `[Commit]` and returns
    /// `[CommitOutcome]`. Each commit runs in its own sub-transaction (an exception block): a stale one
    /// (version moved, reference taken, the same inbound message applied concurrently) is undone alone.
    private static let functionsSQL = [
        """
        CREATE OR REPLACE FUNCTION sb_snapshot(cid text) RETURNS jsonb LANGUAGE sql STABLE AS $$
          SELECT jsonb_build_object(
            'id', c.id, 'version', c.version,
            'references', coalesce((SELECT jsonb_object_agg(endpoint, ticket_id) FROM reference WHERE conversation_id = c.id), '{}'),
            'attributes', coalesce((SELECT jsonb_object_agg(name, value) FROM attribute WHERE conversation_id = c.id), '{}'),
            'counters', coalesce((SELECT jsonb_object_agg(name, value) FROM counter WHERE conversation_id = c.id), '{}'))
          FROM conversation c WHERE c.id = cid
        $$
        """,
        """
        CREATE OR REPLACE FUNCTION sb_find(batch jsonb) RETURNS jsonb LANGUAGE sql STABLE AS $$
          SELECT coalesce(jsonb_agg(
            (SELECT sb_snapshot(r.conversation_id)
               FROM jsonb_array_elements(refs.list) WITH ORDINALITY AS x(ref, n)
               JOIN reference r ON r.endpoint = x.ref->>'endpoint' AND r.ticket_id = x.ref->>'ticketId'
              ORDER BY x.n LIMIT 1)
            ORDER BY refs.i), '[]')
          FROM jsonb_array_elements(batch) WITH ORDINALITY AS refs(list, i)
        $$
        """,
        """
        CREATE OR REPLACE FUNCTION sb_outbound_json(o outbox) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
          SELECT jsonb_build_object(
            'messageId', o.message_id, 'conversationId', o.conversation_id,
            'inbound', jsonb_build_object('endpoint', o.inbound_endpoint, 'messageId', o.inbound_message_id),
            'target', o.target, 'type', o.type, 'rule', o.rule,
            'body', translate(encode(o.body, 'base64'), E'\\n', ''), 'delayMs', o.delay_ms, 'kind', o.kind)
        $$
        """,
        """
        CREATE OR REPLACE FUNCTION sb_commit(batch jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
        DECLARE
          c jsonb; ref jsonb; cid text; dup text; dup_attempt text; dup_digest text; dup_at double precision; owner text; expected bigint; current bigint; at double precision;
          outcomes jsonb := '[]'; broken text[] := '{}';
        BEGIN
          -- The batch's conversations locked up front, in one order: two batches that share conversations
          -- wait for each other instead of deadlocking.
          PERFORM 1 FROM conversation
            WHERE id IN (SELECT DISTINCT value->>'conversationId' FROM jsonb_array_elements(batch)) ORDER BY id FOR UPDATE;
          FOR c IN SELECT value FROM jsonb_array_elements(batch) LOOP
            cid := c->>'conversationId';
            -- A later commit of a conversation was decided on top of the earlier ones of this batch: once
            -- one is not applied, the rest of that chain is stale too (see SQLiteStore.commit).
            IF cid = ANY(broken) THEN
              outcomes := outcomes || '[{"stale": {}}]'::jsonb;
              CONTINUE;
            END IF;
            SELECT conversation_id, attempt, digest, processed_at INTO dup, dup_attempt, dup_digest, dup_at FROM processed
             WHERE endpoint = c->'inbound'->>'endpoint' AND message_id = c->'inbound'->>'messageId';
            IF FOUND AND c->>'attempt' <> '' AND dup_attempt = c->>'attempt' AND dup = c->>'conversationId' THEN
              -- This very request, served a second time: it was committed.
              outcomes := outcomes || jsonb_build_array(jsonb_build_object('committed', jsonb_build_object(
                'version', (c->>'expectedVersion')::bigint + 1)));
              CONTINUE;
            ELSIF FOUND AND dup_digest <> '' AND coalesce(c->>'digest', '') <> '' AND dup_digest <> c->>'digest' THEN
              -- The same message_id on another message: not a resend.
              broken := broken || cid;
              outcomes := outcomes || jsonb_build_array(jsonb_build_object('conflict', jsonb_build_object(
                'conversationId', dup, 'digest', dup_digest, 'at', dup_at)));
              CONTINUE;
            ELSIF FOUND THEN
              broken := broken || cid;
              outcomes := outcomes || jsonb_build_array(jsonb_build_object('duplicate', jsonb_build_object(
                'conversationId', dup,
                'outbox', (SELECT coalesce(jsonb_agg(sb_outbound_json(o) ORDER BY o.seq), '[]') FROM outbox o
                            WHERE o.inbound_endpoint = c->'inbound'->>'endpoint' AND o.inbound_message_id = c->'inbound'->>'messageId'))));
              CONTINUE;
            END IF;
            expected := (c->>'expectedVersion')::bigint;
            at := (c->>'at')::double precision;
            BEGIN
              SELECT version INTO current FROM conversation WHERE id = cid FOR UPDATE;
              IF NOT FOUND THEN current := NULL; END IF;
              IF coalesce(current, 0) <> expected THEN RAISE EXCEPTION 'stale' USING ERRCODE = 'SB001'; END IF;
              IF current IS NULL THEN
                INSERT INTO conversation (id, version, created_at, updated_at) VALUES (cid, expected + 1, at, at)
                  ON CONFLICT (id) DO NOTHING;
                IF NOT FOUND THEN RAISE EXCEPTION 'stale' USING ERRCODE = 'SB001'; END IF;
              ELSE
                UPDATE conversation SET version = expected + 1, updated_at = at WHERE id = cid;
              END IF;
              FOR ref IN SELECT value FROM jsonb_array_elements(c->'newReferences') LOOP
                INSERT INTO reference (endpoint, ticket_id, conversation_id, created_at)
                  VALUES (ref->>'endpoint', ref->>'ticketId', cid, at) ON CONFLICT DO NOTHING;
                SELECT conversation_id INTO owner FROM reference WHERE endpoint = ref->>'endpoint' AND ticket_id = ref->>'ticketId';
                IF owner <> cid THEN RAISE EXCEPTION 'stale' USING ERRCODE = 'SB001'; END IF;
              END LOOP;
              -- Another commit of this message id won a race (checked as a duplicate or conflict on the retry);
              -- every other unique violation (an outbox id) is an error, never "stale": retrying it would
              -- give the same answer forever and stop the partition.
              INSERT INTO processed (endpoint, message_id, conversation_id, processed_at, attempt, digest)
                VALUES (c->'inbound'->>'endpoint', c->'inbound'->>'messageId', cid, at, c->>'attempt', coalesce(c->>'digest', ''))
                ON CONFLICT DO NOTHING;
              IF NOT FOUND THEN RAISE EXCEPTION 'stale' USING ERRCODE = 'SB001'; END IF;
              INSERT INTO outbox (message_id, conversation_id, inbound_endpoint, inbound_message_id, seq, target, type, rule, body, delay_ms, kind, created_at)
                SELECT o->>'messageId', o->>'conversationId', o->'inbound'->>'endpoint', o->'inbound'->>'messageId', n - 1,
                       o->>'target', o->>'type', o->>'rule', decode(o->>'body', 'base64'), (o->>'delayMs')::bigint, o->>'kind', at
                  FROM jsonb_array_elements(c->'outbox') WITH ORDINALITY AS x(o, n);
              INSERT INTO attribute (conversation_id, name, value, updated_at)
                SELECT cid, key, value, at FROM jsonb_each_text(c->'setAttributes')
                ON CONFLICT (conversation_id, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at;
              DELETE FROM attribute WHERE conversation_id = cid
                AND name IN (SELECT jsonb_array_elements_text(c->'removedAttributes'));
              UPDATE outbox o SET failed_at = at, failure = f.value
                FROM jsonb_each_text(coalesce(c->'failed', '{}')) AS f WHERE o.message_id = f.key;
              UPDATE outbox SET answered_at = at
                WHERE message_id IN (SELECT jsonb_array_elements_text(coalesce(c->'answered', '[]')));
              INSERT INTO counter (conversation_id, name, value, updated_at)
                SELECT cid, key, value::bigint, at FROM jsonb_each_text(c->'counters')
                ON CONFLICT (conversation_id, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at;
              INSERT INTO timeline (conversation_id, at, kind, endpoint, who, message_id, rule, detail, body, since_intake_ms,
                                    message_type, delay_ms, answers)
                SELECT t->>'conversationId', (t->>'at')::double precision, t->>'kind', t->>'endpoint', t->>'who',
                       t->>'messageId', t->>'rule', t->>'detail', t->>'body', (t->>'sinceIntakeMs')::bigint,
                       t->>'messageType', (t->>'delayMs')::bigint, t->>'answers'
                  FROM jsonb_array_elements(c->'timeline') WITH ORDINALITY AS x(t, n) ORDER BY n;
              outcomes := outcomes || jsonb_build_array(jsonb_build_object('committed', jsonb_build_object('version', expected + 1)));
            EXCEPTION WHEN SQLSTATE 'SB001' THEN
              broken := broken || cid;
              outcomes := outcomes || '[{"stale": {}}]'::jsonb;
            END;
          END LOOP;
          RETURN outcomes;
        END
        $$
        """,
    ]

    /// Numbered migrations: version N is the N-th, each applied once (recorded in `schema_version`), all in
    /// the start's one transaction under the advisory lock, so two store processes starting together do
    /// not race. Version 1 is the schema as it was before versions (idempotent: a database made by an
    /// older release passes through it unchanged). Append; never edit an applied one.
    static let migrations: [(name: String, sql: String)] = [
        ("the schema before versions", schemaSQL),
        ("parked messages as data", """
            CREATE TABLE parked (
                seq BIGSERIAL PRIMARY KEY,
                id TEXT NOT NULL UNIQUE,
                parked_at DOUBLE PRECISION NOT NULL,
                reason TEXT NOT NULL,
                reason_group TEXT NOT NULL,
                stage TEXT NOT NULL,
                origin TEXT NOT NULL,
                endpoint TEXT,
                ticket TEXT,
                message_id TEXT,
                properties BYTEA NOT NULL,
                body BYTEA NOT NULL);
            CREATE INDEX parked_by_group ON parked(reason_group, seq);
            CREATE INDEX parked_by_ticket ON parked(endpoint, ticket)
            """),
        ("outbound messages answered by an ack", """
            ALTER TABLE outbox ADD COLUMN answered_at DOUBLE PRECISION;
            CREATE INDEX outbox_answered ON outbox(answered_at) WHERE answered_at IS NOT NULL
            """),
        ("typed timeline fields", """
            ALTER TABLE timeline ADD COLUMN message_type TEXT;
            ALTER TABLE timeline ADD COLUMN delay_ms BIGINT;
            ALTER TABLE timeline ADD COLUMN answers TEXT
            """),
    ]

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
                        attempt TEXT NOT NULL DEFAULT '',
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
                    ALTER TABLE processed ADD COLUMN IF NOT EXISTS attempt TEXT NOT NULL DEFAULT '';
                    ALTER TABLE processed ADD COLUMN IF NOT EXISTS digest TEXT NOT NULL DEFAULT '';
                    ALTER TABLE outbox ADD COLUMN IF NOT EXISTS failed_at DOUBLE PRECISION;
                    ALTER TABLE outbox ADD COLUMN IF NOT EXISTS failure TEXT;
                    CREATE INDEX IF NOT EXISTS outbox_failed ON outbox(failed_at) WHERE failed_at IS NOT NULL;
                    CREATE INDEX IF NOT EXISTS outbox_by_age ON outbox(created_at);
                    CREATE INDEX IF NOT EXISTS processed_by_age ON processed(processed_at);
                    CREATE INDEX IF NOT EXISTS conversation_by_age ON conversation(updated_at);
                    ALTER TABLE timeline ADD COLUMN IF NOT EXISTS body TEXT;
                    ALTER TABLE timeline ADD COLUMN IF NOT EXISTS since_intake_ms BIGINT;
                    CREATE TABLE IF NOT EXISTS audit (
                        id BIGSERIAL PRIMARY KEY,
                        at DOUBLE PRECISION NOT NULL,
                        who TEXT NOT NULL,
                        action TEXT NOT NULL,
                        reason TEXT NOT NULL,
                        conversation_id TEXT,
                        endpoint TEXT,
                        message_id TEXT,
                        parked_id TEXT NOT NULL,
                        detail TEXT NOT NULL);
                    CREATE INDEX IF NOT EXISTS audit_by_conversation ON audit(conversation_id, id);
                    CREATE INDEX IF NOT EXISTS outbox_delayed ON outbox(created_at) WHERE delay_ms > 0
                    """

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
}
