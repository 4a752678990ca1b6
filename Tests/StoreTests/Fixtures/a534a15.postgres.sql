--
-- PostgreSQL database dump
--

\restrict DhkRwo1KzoLdLcUey1pTib8uyjkAMOWUyrfcR2dbqTPEU9aX54tJCnaMq7pKsIB

-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: sb_fixture_schema; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA sb_fixture_schema;


--
-- Name: sb_commit(jsonb); Type: FUNCTION; Schema: sb_fixture_schema; Owner: -
--

CREATE FUNCTION sb_fixture_schema.sb_commit(batch jsonb) RETURNS jsonb
    LANGUAGE plpgsql
    AS $$
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
      INSERT INTO processed (endpoint, message_id, conversation_id, processed_at, attempt, digest)
        VALUES (c->'inbound'->>'endpoint', c->'inbound'->>'messageId', cid, at, c->>'attempt', coalesce(c->>'digest', ''));
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
      INSERT INTO counter (conversation_id, name, value, updated_at)
        SELECT cid, key, value::bigint, at FROM jsonb_each_text(c->'counters')
        ON CONFLICT (conversation_id, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at;
      INSERT INTO timeline (conversation_id, at, kind, endpoint, who, message_id, rule, detail, body, since_intake_ms)
        SELECT t->>'conversationId', (t->>'at')::double precision, t->>'kind', t->>'endpoint', t->>'who',
               t->>'messageId', t->>'rule', t->>'detail', t->>'body', (t->>'sinceIntakeMs')::bigint
          FROM jsonb_array_elements(c->'timeline') WITH ORDINALITY AS x(t, n) ORDER BY n;
      outcomes := outcomes || jsonb_build_array(jsonb_build_object('committed', jsonb_build_object('version', expected + 1)));
    EXCEPTION WHEN SQLSTATE 'SB001' OR unique_violation THEN
      broken := broken || cid;
      outcomes := outcomes || '[{"stale": {}}]'::jsonb;
    END;
  END LOOP;
  RETURN outcomes;
END
$$;


--
-- Name: sb_find(jsonb); Type: FUNCTION; Schema: sb_fixture_schema; Owner: -
--

CREATE FUNCTION sb_fixture_schema.sb_find(batch jsonb) RETURNS jsonb
    LANGUAGE sql STABLE
    AS $$
  SELECT coalesce(jsonb_agg(
    (SELECT sb_snapshot(r.conversation_id)
       FROM jsonb_array_elements(refs.list) WITH ORDINALITY AS x(ref, n)
       JOIN reference r ON r.endpoint = x.ref->>'endpoint' AND r.ticket_id = x.ref->>'ticketId'
      ORDER BY x.n LIMIT 1)
    ORDER BY refs.i), '[]')
  FROM jsonb_array_elements(batch) WITH ORDINALITY AS refs(list, i)
$$;


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: outbox; Type: TABLE; Schema: sb_fixture_schema; Owner: -
--

CREATE TABLE sb_fixture_schema.outbox (
    message_id text NOT NULL,
    conversation_id text NOT NULL,
    inbound_endpoint text NOT NULL,
    inbound_message_id text NOT NULL,
    seq bigint NOT NULL,
    target text NOT NULL,
    type text NOT NULL,
    rule text NOT NULL,
    body bytea NOT NULL,
    delay_ms bigint DEFAULT 0 NOT NULL,
    kind text DEFAULT 'message'::text NOT NULL,
    created_at double precision NOT NULL,
    failed_at double precision,
    failure text
);


--
-- Name: sb_outbound_json(sb_fixture_schema.outbox); Type: FUNCTION; Schema: sb_fixture_schema; Owner: -
--

CREATE FUNCTION sb_fixture_schema.sb_outbound_json(o sb_fixture_schema.outbox) RETURNS jsonb
    LANGUAGE sql IMMUTABLE
    AS $$
  SELECT jsonb_build_object(
    'messageId', o.message_id, 'conversationId', o.conversation_id,
    'inbound', jsonb_build_object('endpoint', o.inbound_endpoint, 'messageId', o.inbound_message_id),
    'target', o.target, 'type', o.type, 'rule', o.rule,
    'body', translate(encode(o.body, 'base64'), E'\n', ''), 'delayMs', o.delay_ms, 'kind', o.kind)
$$;


--
-- Name: sb_snapshot(text); Type: FUNCTION; Schema: sb_fixture_schema; Owner: -
--

CREATE FUNCTION sb_fixture_schema.sb_snapshot(cid text) RETURNS jsonb
    LANGUAGE sql STABLE
    AS $$
  SELECT jsonb_build_object(
    'id', c.id, 'version', c.version,
    'references', coalesce((SELECT jsonb_object_agg(endpoint, ticket_id) FROM reference WHERE conversation_id = c.id), '{}'),
    'attributes', coalesce((SELECT jsonb_object_agg(name, value) FROM attribute WHERE conversation_id = c.id), '{}'),
    'counters', coalesce((SELECT jsonb_object_agg(name, value) FROM counter WHERE conversation_id = c.id), '{}'))
  FROM conversation c WHERE c.id = cid
$$;


--
-- Name: attribute; Type: TABLE; Schema: sb_fixture_schema; Owner: -
--

CREATE TABLE sb_fixture_schema.attribute (
    conversation_id text NOT NULL,
    name text NOT NULL,
    value text NOT NULL,
    updated_at double precision NOT NULL
);


--
-- Name: audit; Type: TABLE; Schema: sb_fixture_schema; Owner: -
--

CREATE TABLE sb_fixture_schema.audit (
    id bigint NOT NULL,
    at double precision NOT NULL,
    who text NOT NULL,
    action text NOT NULL,
    reason text NOT NULL,
    conversation_id text,
    endpoint text,
    message_id text,
    parked_id text NOT NULL,
    detail text NOT NULL
);


--
-- Name: audit_id_seq; Type: SEQUENCE; Schema: sb_fixture_schema; Owner: -
--

CREATE SEQUENCE sb_fixture_schema.audit_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: audit_id_seq; Type: SEQUENCE OWNED BY; Schema: sb_fixture_schema; Owner: -
--

ALTER SEQUENCE sb_fixture_schema.audit_id_seq OWNED BY sb_fixture_schema.audit.id;


--
-- Name: conversation; Type: TABLE; Schema: sb_fixture_schema; Owner: -
--

CREATE TABLE sb_fixture_schema.conversation (
    id text NOT NULL,
    version bigint NOT NULL,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL
);


--
-- Name: counter; Type: TABLE; Schema: sb_fixture_schema; Owner: -
--

CREATE TABLE sb_fixture_schema.counter (
    conversation_id text NOT NULL,
    name text NOT NULL,
    value bigint NOT NULL,
    updated_at double precision NOT NULL
);


--
-- Name: member; Type: TABLE; Schema: sb_fixture_schema; Owner: -
--

CREATE TABLE sb_fixture_schema.member (
    id text NOT NULL,
    seen_at double precision NOT NULL
);


--
-- Name: processed; Type: TABLE; Schema: sb_fixture_schema; Owner: -
--

CREATE TABLE sb_fixture_schema.processed (
    endpoint text NOT NULL,
    message_id text NOT NULL,
    conversation_id text NOT NULL,
    processed_at double precision NOT NULL,
    attempt text DEFAULT ''::text NOT NULL,
    digest text DEFAULT ''::text NOT NULL
);


--
-- Name: reference; Type: TABLE; Schema: sb_fixture_schema; Owner: -
--

CREATE TABLE sb_fixture_schema.reference (
    endpoint text NOT NULL,
    ticket_id text NOT NULL,
    conversation_id text NOT NULL,
    created_at double precision NOT NULL,
    seq bigint NOT NULL
);


--
-- Name: reference_seq_seq; Type: SEQUENCE; Schema: sb_fixture_schema; Owner: -
--

CREATE SEQUENCE sb_fixture_schema.reference_seq_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: reference_seq_seq; Type: SEQUENCE OWNED BY; Schema: sb_fixture_schema; Owner: -
--

ALTER SEQUENCE sb_fixture_schema.reference_seq_seq OWNED BY sb_fixture_schema.reference.seq;


--
-- Name: timeline; Type: TABLE; Schema: sb_fixture_schema; Owner: -
--

CREATE TABLE sb_fixture_schema.timeline (
    id bigint NOT NULL,
    conversation_id text NOT NULL,
    at double precision NOT NULL,
    kind text NOT NULL,
    endpoint text,
    who text,
    message_id text,
    rule text,
    detail text NOT NULL,
    body text,
    since_intake_ms bigint
);


--
-- Name: timeline_id_seq; Type: SEQUENCE; Schema: sb_fixture_schema; Owner: -
--

CREATE SEQUENCE sb_fixture_schema.timeline_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: timeline_id_seq; Type: SEQUENCE OWNED BY; Schema: sb_fixture_schema; Owner: -
--

ALTER SEQUENCE sb_fixture_schema.timeline_id_seq OWNED BY sb_fixture_schema.timeline.id;


--
-- Name: audit id; Type: DEFAULT; Schema: sb_fixture_schema; Owner: -
--

ALTER TABLE ONLY sb_fixture_schema.audit ALTER COLUMN id SET DEFAULT nextval('sb_fixture_schema.audit_id_seq'::regclass);


--
-- Name: reference seq; Type: DEFAULT; Schema: sb_fixture_schema; Owner: -
--

ALTER TABLE ONLY sb_fixture_schema.reference ALTER COLUMN seq SET DEFAULT nextval('sb_fixture_schema.reference_seq_seq'::regclass);


--
-- Name: timeline id; Type: DEFAULT; Schema: sb_fixture_schema; Owner: -
--

ALTER TABLE ONLY sb_fixture_schema.timeline ALTER COLUMN id SET DEFAULT nextval('sb_fixture_schema.timeline_id_seq'::regclass);


--
-- Data for Name: attribute; Type: TABLE DATA; Schema: sb_fixture_schema; Owner: -
--

COPY sb_fixture_schema.attribute (conversation_id, name, value, updated_at) FROM stdin;
592818d39c7d456da8b1c6124012d506	original_group	{"display_value":"Local Service Desk","value":"g-local"}	1796544809.8750997
592818d39c7d456da8b1c6124012d506	vendor_fields	{"description":"Nothing works","priority":{"name":"Highest"},"summary":"INC0000001: SAP down"}	1796544810.23087
c151f9a5ae7f47c79d6d9704e3c63eac	original_group	{"display_value":"Local Service Desk","value":"g-local"}	1796544810.28824
c151f9a5ae7f47c79d6d9704e3c63eac	vendor_fields	{"description":"Nothing works","priority":{"name":"Highest"},"summary":"INC0000002: SAP down"}	1796544810.6391098
\.


--
-- Data for Name: audit; Type: TABLE DATA; Schema: sb_fixture_schema; Owner: -
--

COPY sb_fixture_schema.audit (id, at, who, action, reason, conversation_id, endpoint, message_id, parked_id, detail) FROM stdin;
\.


--
-- Data for Name: conversation; Type: TABLE DATA; Schema: sb_fixture_schema; Owner: -
--

COPY sb_fixture_schema.conversation (id, version, created_at, updated_at) FROM stdin;
592818d39c7d456da8b1c6124012d506	5	1796544809.8750997	1796544810.2842846
c151f9a5ae7f47c79d6d9704e3c63eac	5	1796544810.28824	1796544810.6929579
\.


--
-- Data for Name: counter; Type: TABLE DATA; Schema: sb_fixture_schema; Owner: -
--

COPY sb_fixture_schema.counter (conversation_id, name, value, updated_at) FROM stdin;
592818d39c7d456da8b1c6124012d506	lock_retries	1	1796544810.2842846
c151f9a5ae7f47c79d6d9704e3c63eac	lock_retries	1	1796544810.6929579
\.


--
-- Data for Name: member; Type: TABLE DATA; Schema: sb_fixture_schema; Owner: -
--

COPY sb_fixture_schema.member (id, seen_at) FROM stdin;
\.


--
-- Data for Name: outbox; Type: TABLE DATA; Schema: sb_fixture_schema; Owner: -
--

COPY sb_fixture_schema.outbox (message_id, conversation_id, inbound_endpoint, inbound_message_id, seq, target, type, rule, body, delay_ms, kind, created_at, failed_at, failure) FROM stdin;
sb-592818d39c7d456da8b1c6124012d506-c5f3ffe12d807aba-4d0a62c34f382a0e-0	592818d39c7d456da8b1c6124012d506	customer-a	INC0000001-2	0	vendor-x	create	create-at-vendor	\\x7b22637573746f6d65725f7265666572656e6365223a22494e4330303030303031222c226669656c6473223a7b226465736372697074696f6e223a224e6f7468696e6720776f726b73222c227072696f72697479223a7b226e616d65223a2248696768227d2c2273756d6d617279223a22494e43303030303030313a2053415020646f776e227d2c226f7065726174696f6e223a22637265617465227d	0	message	1796544809.8830647	\N	\N
sb-592818d39c7d456da8b1c6124012d506-c5f3ffe12d807aba-4d0a62c34e382a0e-0	592818d39c7d456da8b1c6124012d506	customer-a	INC0000001-3	0	vendor-x	update	update-at-vendor	\\x7b22637573746f6d65725f7265666572656e6365223a22494e4330303030303031222c226669656c6473223a7b226465736372697074696f6e223a224e6f7468696e6720776f726b73222c227072696f72697479223a7b226e616d65223a2248696768657374227d2c2273756d6d617279223a22494e43303030303030313a2053415020646f776e227d2c226b6579223a2256582d31222c226f7065726174696f6e223a22757064617465227d	0	message	1796544810.23087	\N	\N
sb-592818d39c7d456da8b1c6124012d506-c5f3ffe12d807aba-0ca84a0e7df18e25-t0	592818d39c7d456da8b1c6124012d506	vendor-x	VX-1-ack-2	0	switchboard	vendor-lock-retry	vendor-locked-retry	\\x7b22636f6e766572736174696f6e223a223539323831386433396337643435366461386231633631323430313264353036222c2274696d6572223a2276656e646f722d6c6f636b2d7265747279227d	60000	timer	1796544810.2842846	\N	\N
sb-c151f9a5ae7f47c79d6d9704e3c63eac-c5f3fee12d807907-4d0a5e1fa4382a0e-0	c151f9a5ae7f47c79d6d9704e3c63eac	customer-a	INC0000002-2	0	vendor-x	create	create-at-vendor	\\x7b22637573746f6d65725f7265666572656e6365223a22494e4330303030303032222c226669656c6473223a7b226465736372697074696f6e223a224e6f7468696e6720776f726b73222c227072696f72697479223a7b226e616d65223a2248696768227d2c2273756d6d617279223a22494e43303030303030323a2053415020646f776e227d2c226f7065726174696f6e223a22637265617465227d	0	message	1796544810.28834	\N	\N
sb-c151f9a5ae7f47c79d6d9704e3c63eac-c5f3fee12d807907-4d0a5e1fa5382a0e-0	c151f9a5ae7f47c79d6d9704e3c63eac	customer-a	INC0000002-3	0	vendor-x	update	update-at-vendor	\\x7b22637573746f6d65725f7265666572656e6365223a22494e4330303030303032222c226669656c6473223a7b226465736372697074696f6e223a224e6f7468696e6720776f726b73222c227072696f72697479223a7b226e616d65223a2248696768657374227d2c2273756d6d617279223a22494e43303030303030323a2053415020646f776e227d2c226b6579223a2256582d32222c226f7065726174696f6e223a22757064617465227d	0	message	1796544810.6391098	\N	\N
sb-c151f9a5ae7f47c79d6d9704e3c63eac-c5f3fee12d807907-e41ed439c6f18e25-t0	c151f9a5ae7f47c79d6d9704e3c63eac	vendor-x	VX-2-ack-2	0	switchboard	vendor-lock-retry	vendor-locked-retry	\\x7b22636f6e766572736174696f6e223a226331353166396135616537663437633739643664393730346533633633656163222c2274696d6572223a2276656e646f722d6c6f636b2d7265747279227d	60000	timer	1796544810.6929579	\N	\N
\.


--
-- Data for Name: processed; Type: TABLE DATA; Schema: sb_fixture_schema; Owner: -
--

COPY sb_fixture_schema.processed (endpoint, message_id, conversation_id, processed_at, attempt, digest) FROM stdin;
customer-a	INC0000001-1	592818d39c7d456da8b1c6124012d506	1796544809.8750997	8D345BB8-71A6-45E9-B61A-1782299F62B8-0	67c088ed1f714ab6
customer-a	INC0000001-2	592818d39c7d456da8b1c6124012d506	1796544809.8830647	FD94FEC8-F0EA-442F-B694-3282A8C22647-0	e1f307f47852e94c
vendor-x	VX-1-ack-1	592818d39c7d456da8b1c6124012d506	1796544809.9308429	B621C453-AD35-4352-8461-972EA6046AF7-0	b6a7bf03a1def952
customer-a	INC0000001-3	592818d39c7d456da8b1c6124012d506	1796544810.23087	A6F0AFD5-097B-4B9A-86CE-38B3D745040F-0	a7bdb0fd31388fed
vendor-x	VX-1-ack-2	592818d39c7d456da8b1c6124012d506	1796544810.2842846	A2D011FF-E822-46BB-8801-ECA44FA3B745-0	89571c70edd84584
customer-a	INC0000002-1	c151f9a5ae7f47c79d6d9704e3c63eac	1796544810.28824	B69489C4-9511-43C7-9EDA-FCB593592439-0	5224c1d14e177da5
customer-a	INC0000002-2	c151f9a5ae7f47c79d6d9704e3c63eac	1796544810.28834	B69489C4-9511-43C7-9EDA-FCB593592439-1	cfb4ef9a6e3565e9
vendor-x	VX-2-ack-1	c151f9a5ae7f47c79d6d9704e3c63eac	1796544810.3383746	E743E6EC-91CC-43BC-A37C-F7D7E5BE4265-0	392a489dde7fa7c1
customer-a	INC0000002-3	c151f9a5ae7f47c79d6d9704e3c63eac	1796544810.6391098	65072143-5286-4E5F-9C13-5628561CC962-0	508ec55e1d3a3b89
vendor-x	VX-2-ack-2	c151f9a5ae7f47c79d6d9704e3c63eac	1796544810.6929579	C78A9685-ACC6-47C3-BD53-3916B943FB3B-0	a47969bb735c5134
\.


--
-- Data for Name: reference; Type: TABLE DATA; Schema: sb_fixture_schema; Owner: -
--

COPY sb_fixture_schema.reference (endpoint, ticket_id, conversation_id, created_at, seq) FROM stdin;
customer-a	INC0000001	592818d39c7d456da8b1c6124012d506	1796544809.8750997	1
vendor-x	VX-1	592818d39c7d456da8b1c6124012d506	1796544809.9308429	2
customer-a	INC0000002	c151f9a5ae7f47c79d6d9704e3c63eac	1796544810.28824	3
vendor-x	VX-2	c151f9a5ae7f47c79d6d9704e3c63eac	1796544810.3383746	4
\.


--
-- Data for Name: timeline; Type: TABLE DATA; Schema: sb_fixture_schema; Owner: -
--

COPY sb_fixture_schema.timeline (id, conversation_id, at, kind, endpoint, who, message_id, rule, detail, body, since_intake_ms) FROM stdin;
1	592818d39c7d456da8b1c6124012d506	1796544809.8750997	received	customer-a	alice	INC0000001-1	\N	update of customer-a/INC0000001	{"number": "INC0000001", "sys_id": "741bb8c0e6fa438280fdea31bc254c8e", "short_description": "SAP down", "description": "Nothing works", "priority": "2", "state": "2", "assignment_group": {"value": "g-local", "display_value": "Local Service Desk"}, "sys_updated_by": "alice"}	5
2	592818d39c7d456da8b1c6124012d506	1796544809.8750997	rule-matched	customer-a	\N	INC0000001-1	remember-origin	rule 'remember-origin' matched	\N	\N
3	592818d39c7d456da8b1c6124012d506	1796544809.8750997	attribute	customer-a	\N	INC0000001-1	remember-origin	original_group: (none) -> {"display_value":"Local Service Desk","value":"g-local"}	\N	\N
4	592818d39c7d456da8b1c6124012d506	1796544809.8830647	received	customer-a	alice	INC0000001-2	\N	update of customer-a/INC0000001	{"number": "INC0000001", "sys_id": "2a0fc06618604cf39b3f130064c3324a", "short_description": "SAP down", "description": "Nothing works", "priority": "2", "state": "2", "assignment_group": {"value": "g-sap", "display_value": "SAP Support"}, "sys_updated_by": "alice"}	2
5	592818d39c7d456da8b1c6124012d506	1796544809.8830647	rule-matched	customer-a	\N	INC0000001-2	remember-origin	rule 'remember-origin' matched	\N	\N
6	592818d39c7d456da8b1c6124012d506	1796544809.8830647	rule-matched	customer-a	\N	INC0000001-2	create-at-vendor	rule 'create-at-vendor' matched	\N	\N
7	592818d39c7d456da8b1c6124012d506	1796544809.8830647	sent	vendor-x	\N	sb-592818d39c7d456da8b1c6124012d506-c5f3ffe12d807aba-4d0a62c34f382a0e-0	create-at-vendor	create to vendor-x: {"customer_reference":"INC0000001","fields":{"description":"Nothing works","priority":{"name":"High"},"summary":"INC0000001: SAP down"},"operation":"create"}	\N	\N
8	592818d39c7d456da8b1c6124012d506	1796544809.9308429	acked	vendor-x	\N	VX-1-ack-1	\N	ok ack of create sb-592818d39c7d456da8b1c6124012d506-c5f3ffe12d807aba-4d0a62c34f382a0e-0 to vendor-x	{"status": "ok", "key": "VX-1"}	\N
9	592818d39c7d456da8b1c6124012d506	1796544809.9308429	linked	vendor-x	\N	VX-1-ack-1	\N	linked vendor-x/VX-1	\N	\N
10	592818d39c7d456da8b1c6124012d506	1796544809.9308429	no-rule	vendor-x	\N	VX-1-ack-1	\N	no rule matched ack from vendor-x	[{"reason":"acks match only rules with type: ack","rule":"ignore-vendor-worklogs"},{"reason":"from customer-a; this message is from vendor-x","rule":"remember-origin"},{"reason":"condition 1 is false: field $.status equals \\"error\\"; the value is \\"ok\\"","rule":"vendor-locked-retry"},{"reason":"condition 1 is false: field $.status equals \\"error\\"; the value is \\"ok\\"","rule":"vendor-locked-give-up"},{"reason":"condition 1 is false: field $.status equals \\"error\\"; the value is \\"ok\\"","rule":"vendor-locked-comment-retry"},{"reason":"condition 1 is false: field $.status equals \\"error\\"; the value is \\"ok\\"","rule":"vendor-locked-comment-give-up"},{"reason":"condition 2 is false: meta acked_type equals \\"update\\"; the value is \\"create\\"","rule":"vendor-ack-ok"},{"reason":"condition 2 is false: meta acked_type equals \\"comment\\"; the value is \\"create\\"","rule":"vendor-comment-ack-ok"},{"reason":"acks match only rules with type: ack","rule":"hand-back-to-customer"},{"reason":"from customer-a; this message is from vendor-x","rule":"create-at-vendor"},{"reason":"from customer-a; this message is from vendor-x","rule":"update-at-vendor"},{"reason":"from customer-a; this message is from vendor-x","rule":"comment-at-vendor"},{"reason":"listens to timer 'vendor-lock-retry' only","rule":"retry-locked-update"},{"reason":"listens to timer 'vendor-comment-lock-retry' only","rule":"retry-locked-comment"},{"reason":"acks match only rules with type: ack","rule":"vendor-update-to-customer"}]	\N
11	592818d39c7d456da8b1c6124012d506	1796544810.23087	received	customer-a	bob	INC0000001-3	\N	update of customer-a/INC0000001	{"number": "INC0000001", "sys_id": "9c7998302d2546f3a1f7ed3870f6b6e9", "short_description": "SAP down", "description": "Nothing works", "priority": "1", "state": "2", "assignment_group": {"value": "g-sap", "display_value": "SAP Support"}, "sys_updated_by": "bob"}	2
12	592818d39c7d456da8b1c6124012d506	1796544810.23087	rule-matched	customer-a	\N	INC0000001-3	remember-origin	rule 'remember-origin' matched	\N	\N
13	592818d39c7d456da8b1c6124012d506	1796544810.23087	rule-matched	customer-a	\N	INC0000001-3	update-at-vendor	rule 'update-at-vendor' matched	\N	\N
14	592818d39c7d456da8b1c6124012d506	1796544810.23087	attribute	customer-a	\N	INC0000001-3	update-at-vendor	vendor_fields: (none) -> {"description":"Nothing works","priority":{"name":"Highest"},"summary":"INC0000001: SAP down"}	\N	\N
15	592818d39c7d456da8b1c6124012d506	1796544810.23087	sent	vendor-x	\N	sb-592818d39c7d456da8b1c6124012d506-c5f3ffe12d807aba-4d0a62c34e382a0e-0	update-at-vendor	update to vendor-x: {"customer_reference":"INC0000001","fields":{"description":"Nothing works","priority":{"name":"Highest"},"summary":"INC0000001: SAP down"},"key":"VX-1","operation":"update"}	\N	\N
16	592818d39c7d456da8b1c6124012d506	1796544810.2842846	ack-error	vendor-x	\N	VX-1-ack-2	\N	error ack of update sb-592818d39c7d456da8b1c6124012d506-c5f3ffe12d807aba-4d0a62c34e382a0e-0 to vendor-x: open in another session	{"status": "error", "code": "LOCKED", "message": "open in another session"}	\N
17	592818d39c7d456da8b1c6124012d506	1796544810.2842846	rule-matched	vendor-x	\N	VX-1-ack-2	vendor-locked-retry	rule 'vendor-locked-retry' matched	\N	\N
18	592818d39c7d456da8b1c6124012d506	1796544810.2842846	counter	vendor-x	\N	VX-1-ack-2	vendor-locked-retry	lock_retries: 0 -> 1	\N	\N
19	592818d39c7d456da8b1c6124012d506	1796544810.2842846	delay-scheduled	vendor-x	\N	VX-1-ack-2	vendor-locked-retry	timer 'vendor-lock-retry' in 1m	\N	\N
20	c151f9a5ae7f47c79d6d9704e3c63eac	1796544810.28824	received	customer-a	alice	INC0000002-1	\N	update of customer-a/INC0000002	{"number": "INC0000002", "sys_id": "596fc8c65d1d49c88b8dcabfcc9a85cd", "short_description": "SAP down", "description": "Nothing works", "priority": "2", "state": "2", "assignment_group": {"value": "g-local", "display_value": "Local Service Desk"}, "sys_updated_by": "alice"}	1
21	c151f9a5ae7f47c79d6d9704e3c63eac	1796544810.28824	rule-matched	customer-a	\N	INC0000002-1	remember-origin	rule 'remember-origin' matched	\N	\N
22	c151f9a5ae7f47c79d6d9704e3c63eac	1796544810.28824	attribute	customer-a	\N	INC0000002-1	remember-origin	original_group: (none) -> {"display_value":"Local Service Desk","value":"g-local"}	\N	\N
23	c151f9a5ae7f47c79d6d9704e3c63eac	1796544810.28834	received	customer-a	alice	INC0000002-2	\N	update of customer-a/INC0000002	{"number": "INC0000002", "sys_id": "0c40ee8ac1f54ddfac4c4eda2f38ab2a", "short_description": "SAP down", "description": "Nothing works", "priority": "2", "state": "2", "assignment_group": {"value": "g-sap", "display_value": "SAP Support"}, "sys_updated_by": "alice"}	1
24	c151f9a5ae7f47c79d6d9704e3c63eac	1796544810.28834	rule-matched	customer-a	\N	INC0000002-2	remember-origin	rule 'remember-origin' matched	\N	\N
25	c151f9a5ae7f47c79d6d9704e3c63eac	1796544810.28834	rule-matched	customer-a	\N	INC0000002-2	create-at-vendor	rule 'create-at-vendor' matched	\N	\N
26	c151f9a5ae7f47c79d6d9704e3c63eac	1796544810.28834	sent	vendor-x	\N	sb-c151f9a5ae7f47c79d6d9704e3c63eac-c5f3fee12d807907-4d0a5e1fa4382a0e-0	create-at-vendor	create to vendor-x: {"customer_reference":"INC0000002","fields":{"description":"Nothing works","priority":{"name":"High"},"summary":"INC0000002: SAP down"},"operation":"create"}	\N	\N
27	c151f9a5ae7f47c79d6d9704e3c63eac	1796544810.3383746	acked	vendor-x	\N	VX-2-ack-1	\N	ok ack of create sb-c151f9a5ae7f47c79d6d9704e3c63eac-c5f3fee12d807907-4d0a5e1fa4382a0e-0 to vendor-x	{"status": "ok", "key": "VX-2"}	\N
28	c151f9a5ae7f47c79d6d9704e3c63eac	1796544810.3383746	linked	vendor-x	\N	VX-2-ack-1	\N	linked vendor-x/VX-2	\N	\N
29	c151f9a5ae7f47c79d6d9704e3c63eac	1796544810.3383746	no-rule	vendor-x	\N	VX-2-ack-1	\N	no rule matched ack from vendor-x	[{"reason":"acks match only rules with type: ack","rule":"ignore-vendor-worklogs"},{"reason":"from customer-a; this message is from vendor-x","rule":"remember-origin"},{"reason":"condition 1 is false: field $.status equals \\"error\\"; the value is \\"ok\\"","rule":"vendor-locked-retry"},{"reason":"condition 1 is false: field $.status equals \\"error\\"; the value is \\"ok\\"","rule":"vendor-locked-give-up"},{"reason":"condition 1 is false: field $.status equals \\"error\\"; the value is \\"ok\\"","rule":"vendor-locked-comment-retry"},{"reason":"condition 1 is false: field $.status equals \\"error\\"; the value is \\"ok\\"","rule":"vendor-locked-comment-give-up"},{"reason":"condition 2 is false: meta acked_type equals \\"update\\"; the value is \\"create\\"","rule":"vendor-ack-ok"},{"reason":"condition 2 is false: meta acked_type equals \\"comment\\"; the value is \\"create\\"","rule":"vendor-comment-ack-ok"},{"reason":"acks match only rules with type: ack","rule":"hand-back-to-customer"},{"reason":"from customer-a; this message is from vendor-x","rule":"create-at-vendor"},{"reason":"from customer-a; this message is from vendor-x","rule":"update-at-vendor"},{"reason":"from customer-a; this message is from vendor-x","rule":"comment-at-vendor"},{"reason":"listens to timer 'vendor-lock-retry' only","rule":"retry-locked-update"},{"reason":"listens to timer 'vendor-comment-lock-retry' only","rule":"retry-locked-comment"},{"reason":"acks match only rules with type: ack","rule":"vendor-update-to-customer"}]	\N
30	c151f9a5ae7f47c79d6d9704e3c63eac	1796544810.6391098	received	customer-a	bob	INC0000002-3	\N	update of customer-a/INC0000002	{"number": "INC0000002", "sys_id": "bc2d0d79c3454905ab00263997fabd45", "short_description": "SAP down", "description": "Nothing works", "priority": "1", "state": "2", "assignment_group": {"value": "g-sap", "display_value": "SAP Support"}, "sys_updated_by": "bob"}	2
31	c151f9a5ae7f47c79d6d9704e3c63eac	1796544810.6391098	rule-matched	customer-a	\N	INC0000002-3	remember-origin	rule 'remember-origin' matched	\N	\N
32	c151f9a5ae7f47c79d6d9704e3c63eac	1796544810.6391098	rule-matched	customer-a	\N	INC0000002-3	update-at-vendor	rule 'update-at-vendor' matched	\N	\N
33	c151f9a5ae7f47c79d6d9704e3c63eac	1796544810.6391098	attribute	customer-a	\N	INC0000002-3	update-at-vendor	vendor_fields: (none) -> {"description":"Nothing works","priority":{"name":"Highest"},"summary":"INC0000002: SAP down"}	\N	\N
34	c151f9a5ae7f47c79d6d9704e3c63eac	1796544810.6391098	sent	vendor-x	\N	sb-c151f9a5ae7f47c79d6d9704e3c63eac-c5f3fee12d807907-4d0a5e1fa5382a0e-0	update-at-vendor	update to vendor-x: {"customer_reference":"INC0000002","fields":{"description":"Nothing works","priority":{"name":"Highest"},"summary":"INC0000002: SAP down"},"key":"VX-2","operation":"update"}	\N	\N
35	c151f9a5ae7f47c79d6d9704e3c63eac	1796544810.6929579	ack-error	vendor-x	\N	VX-2-ack-2	\N	error ack of update sb-c151f9a5ae7f47c79d6d9704e3c63eac-c5f3fee12d807907-4d0a5e1fa5382a0e-0 to vendor-x: open in another session	{"status": "error", "code": "LOCKED", "message": "open in another session"}	\N
36	c151f9a5ae7f47c79d6d9704e3c63eac	1796544810.6929579	rule-matched	vendor-x	\N	VX-2-ack-2	vendor-locked-retry	rule 'vendor-locked-retry' matched	\N	\N
37	c151f9a5ae7f47c79d6d9704e3c63eac	1796544810.6929579	counter	vendor-x	\N	VX-2-ack-2	vendor-locked-retry	lock_retries: 0 -> 1	\N	\N
38	c151f9a5ae7f47c79d6d9704e3c63eac	1796544810.6929579	delay-scheduled	vendor-x	\N	VX-2-ack-2	vendor-locked-retry	timer 'vendor-lock-retry' in 1m	\N	\N
\.


--
-- Name: audit_id_seq; Type: SEQUENCE SET; Schema: sb_fixture_schema; Owner: -
--

SELECT pg_catalog.setval('sb_fixture_schema.audit_id_seq', 1, false);


--
-- Name: reference_seq_seq; Type: SEQUENCE SET; Schema: sb_fixture_schema; Owner: -
--

SELECT pg_catalog.setval('sb_fixture_schema.reference_seq_seq', 4, true);


--
-- Name: timeline_id_seq; Type: SEQUENCE SET; Schema: sb_fixture_schema; Owner: -
--

SELECT pg_catalog.setval('sb_fixture_schema.timeline_id_seq', 38, true);


--
-- Name: attribute attribute_pkey; Type: CONSTRAINT; Schema: sb_fixture_schema; Owner: -
--

ALTER TABLE ONLY sb_fixture_schema.attribute
    ADD CONSTRAINT attribute_pkey PRIMARY KEY (conversation_id, name);


--
-- Name: audit audit_pkey; Type: CONSTRAINT; Schema: sb_fixture_schema; Owner: -
--

ALTER TABLE ONLY sb_fixture_schema.audit
    ADD CONSTRAINT audit_pkey PRIMARY KEY (id);


--
-- Name: conversation conversation_pkey; Type: CONSTRAINT; Schema: sb_fixture_schema; Owner: -
--

ALTER TABLE ONLY sb_fixture_schema.conversation
    ADD CONSTRAINT conversation_pkey PRIMARY KEY (id);


--
-- Name: counter counter_pkey; Type: CONSTRAINT; Schema: sb_fixture_schema; Owner: -
--

ALTER TABLE ONLY sb_fixture_schema.counter
    ADD CONSTRAINT counter_pkey PRIMARY KEY (conversation_id, name);


--
-- Name: member member_pkey; Type: CONSTRAINT; Schema: sb_fixture_schema; Owner: -
--

ALTER TABLE ONLY sb_fixture_schema.member
    ADD CONSTRAINT member_pkey PRIMARY KEY (id);


--
-- Name: outbox outbox_pkey; Type: CONSTRAINT; Schema: sb_fixture_schema; Owner: -
--

ALTER TABLE ONLY sb_fixture_schema.outbox
    ADD CONSTRAINT outbox_pkey PRIMARY KEY (message_id);


--
-- Name: processed processed_pkey; Type: CONSTRAINT; Schema: sb_fixture_schema; Owner: -
--

ALTER TABLE ONLY sb_fixture_schema.processed
    ADD CONSTRAINT processed_pkey PRIMARY KEY (endpoint, message_id);


--
-- Name: reference reference_pkey; Type: CONSTRAINT; Schema: sb_fixture_schema; Owner: -
--

ALTER TABLE ONLY sb_fixture_schema.reference
    ADD CONSTRAINT reference_pkey PRIMARY KEY (endpoint, ticket_id);


--
-- Name: timeline timeline_pkey; Type: CONSTRAINT; Schema: sb_fixture_schema; Owner: -
--

ALTER TABLE ONLY sb_fixture_schema.timeline
    ADD CONSTRAINT timeline_pkey PRIMARY KEY (id);


--
-- Name: audit_by_conversation; Type: INDEX; Schema: sb_fixture_schema; Owner: -
--

CREATE INDEX audit_by_conversation ON sb_fixture_schema.audit USING btree (conversation_id, id);


--
-- Name: conversation_by_age; Type: INDEX; Schema: sb_fixture_schema; Owner: -
--

CREATE INDEX conversation_by_age ON sb_fixture_schema.conversation USING btree (updated_at);


--
-- Name: outbox_by_age; Type: INDEX; Schema: sb_fixture_schema; Owner: -
--

CREATE INDEX outbox_by_age ON sb_fixture_schema.outbox USING btree (created_at);


--
-- Name: outbox_by_inbound; Type: INDEX; Schema: sb_fixture_schema; Owner: -
--

CREATE INDEX outbox_by_inbound ON sb_fixture_schema.outbox USING btree (inbound_endpoint, inbound_message_id, seq);


--
-- Name: outbox_delayed; Type: INDEX; Schema: sb_fixture_schema; Owner: -
--

CREATE INDEX outbox_delayed ON sb_fixture_schema.outbox USING btree (created_at) WHERE (delay_ms > 0);


--
-- Name: outbox_failed; Type: INDEX; Schema: sb_fixture_schema; Owner: -
--

CREATE INDEX outbox_failed ON sb_fixture_schema.outbox USING btree (failed_at) WHERE (failed_at IS NOT NULL);


--
-- Name: processed_by_age; Type: INDEX; Schema: sb_fixture_schema; Owner: -
--

CREATE INDEX processed_by_age ON sb_fixture_schema.processed USING btree (processed_at);


--
-- Name: reference_by_conversation; Type: INDEX; Schema: sb_fixture_schema; Owner: -
--

CREATE INDEX reference_by_conversation ON sb_fixture_schema.reference USING btree (conversation_id);


--
-- Name: timeline_by_conversation; Type: INDEX; Schema: sb_fixture_schema; Owner: -
--

CREATE INDEX timeline_by_conversation ON sb_fixture_schema.timeline USING btree (conversation_id, id);


--
-- Name: reference reference_conversation_id_fkey; Type: FK CONSTRAINT; Schema: sb_fixture_schema; Owner: -
--

ALTER TABLE ONLY sb_fixture_schema.reference
    ADD CONSTRAINT reference_conversation_id_fkey FOREIGN KEY (conversation_id) REFERENCES sb_fixture_schema.conversation(id);


--
-- PostgreSQL database dump complete
--

\unrestrict DhkRwo1KzoLdLcUey1pTib8uyjkAMOWUyrfcR2dbqTPEU9aX54tJCnaMq7pKsIB

