// The PostgreSQL schema as SQL: the numbered migrations (`schema_version`) and the server-side functions
// of the hot path, recreated at every start. `PostgresStore.migrate` applies them; nothing else is here.

enum PostgresSchema {
    /// Numbered migrations: version N is the N-th, each applied once (recorded in `schema_version`), all in
    /// the start's one transaction under the advisory lock, so two store processes starting together do
    /// not race. Version 1 is the schema as it was before versions (idempotent: a database made by an
    /// older release passes through it unchanged). Append; never edit an applied one.
    static let migrations: [(name: String, sql: String)] = [
        ("the schema before versions", before),
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
        ("what decided a message and the version it met", """
            ALTER TABLE timeline ADD COLUMN configuration TEXT;
            ALTER TABLE timeline ADD COLUMN met BIGINT
            """),
    ]

    private static let before = """
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

    /// The hot paths as server-side functions, so a worker's batch is one round trip to the database,
    /// whatever its size. They speak the JSON shapes of the Swift types (Codable): `sb_find` takes
    /// `[[TicketRef]]` and returns `[ConversationSnapshot?]`; `sb_commit` takes `[Commit]` and returns
    /// `[CommitOutcome]`. Each commit runs in its own sub-transaction (an exception block): a stale one
    /// (version moved, reference taken, the same inbound message applied concurrently) is undone alone.
    static let functions = [
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
          -- Each reference looked up through the primary key (the LIMIT keeps the lateral from being
          -- flattened into a join the planner may answer by scanning all references: it takes a
          -- jsonb_array_elements for 100 rows).
          SELECT coalesce(jsonb_agg(
            (SELECT sb_snapshot(r.conversation_id)
               FROM jsonb_array_elements(refs.list) WITH ORDINALITY AS x(ref, n)
               CROSS JOIN LATERAL (SELECT conversation_id FROM reference
                                    WHERE endpoint = x.ref->>'endpoint' AND ticket_id = x.ref->>'ticketId' LIMIT 1) r
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
          -- (= ANY of an array: probed through the primary key, never a scan of every conversation.)
          PERFORM 1 FROM conversation
            WHERE id = ANY(ARRAY(SELECT DISTINCT value->>'conversationId' FROM jsonb_array_elements(batch))) ORDER BY id FOR UPDATE;
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
              -- Each statement only when the commit has something for it (most have no failed or answered
              -- outbox rows, no removed attributes), and outbox rows found by their ids (= ANY), never by a
              -- join the planner could answer with a scan of the outbox.
              IF jsonb_array_length(coalesce(c->'outbox', '[]')) > 0 THEN
                INSERT INTO outbox (message_id, conversation_id, inbound_endpoint, inbound_message_id, seq, target, type, rule, body, delay_ms, kind, created_at)
                  SELECT o->>'messageId', o->>'conversationId', o->'inbound'->>'endpoint', o->'inbound'->>'messageId', n - 1,
                         o->>'target', o->>'type', o->>'rule', decode(o->>'body', 'base64'), (o->>'delayMs')::bigint, o->>'kind', at
                    FROM jsonb_array_elements(c->'outbox') WITH ORDINALITY AS x(o, n);
              END IF;
              IF coalesce(c->'setAttributes', '{}') <> '{}' THEN
                INSERT INTO attribute (conversation_id, name, value, updated_at)
                  SELECT cid, key, value, at FROM jsonb_each_text(c->'setAttributes')
                  ON CONFLICT (conversation_id, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at;
              END IF;
              IF jsonb_array_length(coalesce(c->'removedAttributes', '[]')) > 0 THEN
                DELETE FROM attribute WHERE conversation_id = cid
                  AND name = ANY(ARRAY(SELECT jsonb_array_elements_text(c->'removedAttributes')));
              END IF;
              IF coalesce(c->'failed', '{}') <> '{}' THEN
                UPDATE outbox o SET failed_at = at, failure = c->'failed'->>o.message_id
                  WHERE o.message_id = ANY(ARRAY(SELECT jsonb_object_keys(c->'failed')));
              END IF;
              IF jsonb_array_length(coalesce(c->'answered', '[]')) > 0 THEN
                UPDATE outbox SET answered_at = at
                  WHERE message_id = ANY(ARRAY(SELECT jsonb_array_elements_text(c->'answered')));
              END IF;
              IF coalesce(c->'counters', '{}') <> '{}' THEN
                INSERT INTO counter (conversation_id, name, value, updated_at)
                  SELECT cid, key, value::bigint, at FROM jsonb_each_text(c->'counters')
                  ON CONFLICT (conversation_id, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at;
              END IF;
              INSERT INTO timeline (conversation_id, at, kind, endpoint, who, message_id, rule, detail, body, since_intake_ms,
                                    message_type, delay_ms, answers, configuration, met)
                SELECT t->>'conversationId', (t->>'at')::double precision, t->>'kind', t->>'endpoint', t->>'who',
                       t->>'messageId', t->>'rule', t->>'detail', t->>'body', (t->>'sinceIntakeMs')::bigint,
                       t->>'messageType', (t->>'delayMs')::bigint, t->>'answers', t->>'configuration', (t->>'met')::bigint
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
        // Several callers' batches (the store role's commit requests that arrived together) in one
        // transaction: each as sb_commit applies it (its own chain), one array of outcomes per caller; every
        // conversation of all of them locked up front in one order.
        """
        CREATE OR REPLACE FUNCTION sb_commit_groups(groups jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
        DECLARE
          g jsonb; answers jsonb := '[]';
        BEGIN
          PERFORM 1 FROM conversation
            WHERE id = ANY(ARRAY(SELECT DISTINCT c.value->>'conversationId'
                                   FROM jsonb_array_elements(groups) AS g(value), jsonb_array_elements(g.value) AS c(value)))
            ORDER BY id FOR UPDATE;
          FOR g IN SELECT value FROM jsonb_array_elements(groups) LOOP
            answers := answers || jsonb_build_array(sb_commit(g));
          END LOOP;
          RETURN answers;
        END
        $$
        """,
    ]
}
