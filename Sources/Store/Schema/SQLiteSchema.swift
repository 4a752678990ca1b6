// The SQLite schema as SQL: GRDB's migrations in order, each applied once and recorded by its identifier
// (`grdb_migrations`). Append; never edit or rename an applied one. `SQLiteStore` registers them.

enum SQLiteSchema {
    static let migrations: [(identifier: String, sql: String)] = [
        (
            "v1",
            """
            CREATE TABLE conversation (
                id TEXT PRIMARY KEY,
                version INTEGER NOT NULL,
                created_at REAL NOT NULL,
                updated_at REAL NOT NULL
            );
            CREATE TABLE reference (
                endpoint TEXT NOT NULL,
                ticket_id TEXT NOT NULL,
                conversation_id TEXT NOT NULL REFERENCES conversation(id),
                created_at REAL NOT NULL,
                PRIMARY KEY (endpoint, ticket_id)
            );
            CREATE INDEX reference_by_conversation ON reference(conversation_id);
            CREATE TABLE processed (
                endpoint TEXT NOT NULL,
                message_id TEXT NOT NULL,
                conversation_id TEXT NOT NULL,
                processed_at REAL NOT NULL,
                PRIMARY KEY (endpoint, message_id)
            );
            CREATE TABLE outbox (
                message_id TEXT PRIMARY KEY,
                conversation_id TEXT NOT NULL,
                inbound_endpoint TEXT NOT NULL,
                inbound_message_id TEXT NOT NULL,
                seq INTEGER NOT NULL,
                target TEXT NOT NULL,
                type TEXT NOT NULL,
                rule TEXT NOT NULL,
                body BLOB NOT NULL,
                created_at REAL NOT NULL
            );
            CREATE INDEX outbox_by_inbound ON outbox(inbound_endpoint, inbound_message_id, seq);
            CREATE TABLE timeline (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                conversation_id TEXT NOT NULL,
                at REAL NOT NULL,
                kind TEXT NOT NULL,
                endpoint TEXT,
                who TEXT,
                message_id TEXT,
                rule TEXT,
                detail TEXT NOT NULL
            );
            CREATE INDEX timeline_by_conversation ON timeline(conversation_id, id);
            """),
        (
            "v2: attributes, counters, delays",
            """
            CREATE TABLE attribute (
                conversation_id TEXT NOT NULL,
                name TEXT NOT NULL,
                value TEXT NOT NULL,
                updated_at REAL NOT NULL,
                PRIMARY KEY (conversation_id, name)
            );
            CREATE TABLE counter (
                conversation_id TEXT NOT NULL,
                name TEXT NOT NULL,
                value INTEGER NOT NULL,
                updated_at REAL NOT NULL,
                PRIMARY KEY (conversation_id, name)
            );
            ALTER TABLE outbox ADD COLUMN delay_ms INTEGER NOT NULL DEFAULT 0;
            ALTER TABLE outbox ADD COLUMN kind TEXT NOT NULL DEFAULT 'message';
            """),
        ("v3: members", "CREATE TABLE member (id TEXT PRIMARY KEY, seen_at REAL NOT NULL)"),
        ("v4: the attempt that applied a message", "ALTER TABLE processed ADD COLUMN attempt TEXT NOT NULL DEFAULT ''"),
        // A message's timeline entries (received, rule matched, attribute, sent, ...) as one row: one
        // insert and one index entry per message instead of one per entry, the largest cost of a commit.
        // Rows of the old table stay where they are and are read first (they are older).
        (
            "v5: one timeline row per commit",
            """
            CREATE TABLE timeline_entries (
                id INTEGER PRIMARY KEY,
                conversation_id TEXT NOT NULL,
                entries TEXT NOT NULL
            );
            CREATE INDEX timeline_entries_by_conversation ON timeline_entries(conversation_id, id);
            """),
        (
            "v6: failed outbound messages",
            """
            ALTER TABLE outbox ADD COLUMN failed_at REAL;
            ALTER TABLE outbox ADD COLUMN failure TEXT;
            CREATE INDEX outbox_failed ON outbox(failed_at) WHERE failed_at IS NOT NULL;
            """),
        ("v7: what a processed message said", "ALTER TABLE processed ADD COLUMN digest TEXT NOT NULL DEFAULT ''"),
        (
            "v8: what administrators did",
            """
            CREATE TABLE audit (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                at REAL NOT NULL,
                who TEXT NOT NULL,
                action TEXT NOT NULL,
                reason TEXT NOT NULL,
                conversation_id TEXT,
                endpoint TEXT,
                message_id TEXT,
                parked_id TEXT NOT NULL,
                detail TEXT NOT NULL);
            CREATE INDEX audit_by_conversation ON audit(conversation_id, id);
            """),
        // Partial: a commit without a delay writes nothing more.
        ("v9: delayed outbound messages, for endpoint health", "CREATE INDEX outbox_delayed ON outbox(created_at) WHERE delay_ms > 0"),
        // Older rows keep their bodies inside `entries` (NULL here); `decode` reads both.
        ("v10: a timeline row's body in a column of its own", "ALTER TABLE timeline_entries ADD COLUMN body TEXT"),
        (
            "v11: parked messages as data",
            """
            CREATE TABLE parked (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL UNIQUE,
                parked_at REAL NOT NULL,
                reason TEXT NOT NULL,
                reason_group TEXT NOT NULL,
                stage TEXT NOT NULL,
                origin TEXT NOT NULL,
                endpoint TEXT,
                ticket TEXT,
                message_id TEXT,
                properties BLOB NOT NULL,
                body BLOB NOT NULL);
            CREATE INDEX parked_by_group ON parked(reason_group, seq);
            CREATE INDEX parked_by_ticket ON parked(endpoint, ticket);
            """),
        (
            "v12: outbound messages answered by an ack",
            """
            ALTER TABLE outbox ADD COLUMN answered_at REAL;
            CREATE INDEX outbox_answered ON outbox(answered_at) WHERE answered_at IS NOT NULL;
            """),
        // A conversation's timeline rows found from its row back along `prev`, not through an index by
        // conversation: every message inserted one entry into that index at a random place (conversation ids
        // are random), so each commit rewrote about one index page per message (a WAL frame, then again at the
        // checkpoint), a fifth of the store's bytes. The conversation row a commit updates anyway holds the
        // newest row's id. Existing rows are chained here (through the index, before it goes).
        (
            "v13: timeline rows chained per conversation",
            """
            ALTER TABLE timeline_entries ADD COLUMN prev INTEGER;
            ALTER TABLE conversation ADD COLUMN last_timeline INTEGER;
            UPDATE timeline_entries SET prev = (
                SELECT max(p.id) FROM timeline_entries p WHERE p.conversation_id = timeline_entries.conversation_id AND p.id < timeline_entries.id);
            UPDATE conversation SET last_timeline = (SELECT max(t.id) FROM timeline_entries t WHERE t.conversation_id = conversation.id);
            DROP INDEX timeline_entries_by_conversation;
            """),
    ]
}
