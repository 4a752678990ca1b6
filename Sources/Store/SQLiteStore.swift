import Foundation
import GRDB
import JSONPath
import Rules
import Synchronization

/// The embedded default: one SQLite file in WAL mode, through GRDB. Writes are serialised by GRDB's
/// writer queue; reads (admin, lookups) run concurrently with them.
package final class SQLiteStore: ConversationStore {
    let pool: DatabasePool
    package let path: String
    let cache = Mutex(SnapshotCache())
    let checkpointer: Checkpointer
    private let writers = GroupCommit<[Commit], [CommitOutcome]>()

    /// Conversations as the commits through this object left them (write-through), so a batch's lookups
    /// need no queries for the tickets it has seen. Only a shortcut: every commit still checks the version
    /// in the database, and an entry that turns out old (a commit this object did not make, e.g. by
    /// another process on the same file) is dropped when the commit built on it is found stale.
    struct SnapshotCache {
        var conversations: [String: ConversationSnapshot] = [:]
        var byReference: [TicketRef: String] = [:]
        /// Bumped by every commit: a snapshot read from the database is kept only if none happened meanwhile.
        var generation: UInt64 = 0
        static let capacity = 10_000

        func find(_ refs: [TicketRef]) -> ConversationSnapshot? {
            for ref in refs {
                if let id = byReference[ref] { return conversations[id] }
            }
            return nil
        }

        mutating func keep(_ s: ConversationSnapshot) {
            if conversations.count >= Self.capacity && conversations[s.id] == nil {
                conversations.removeAll(keepingCapacity: true)
                byReference.removeAll(keepingCapacity: true)
            }
            conversations[s.id] = s
            for (e, t) in s.references { byReference[TicketRef(e, t)] = s.id }
        }

        mutating func drop(_ id: String) {
            guard let s = conversations.removeValue(forKey: id) else { return }
            for (e, t) in s.references { byReference[TicketRef(e, t)] = nil }
        }
    }

    /// When the WAL is copied back into the database (in pages of 4 KiB); see `Checkpointer`.
    package struct WALLimits: Sendable {
        /// Once the WAL holds this many pages, it is checkpointed to its end between two commits and starts over.
        package var restartPages = 16_000
        /// The writer checkpoints inline only beyond this, should the checkpoint thread fall behind.
        package var backstopPages = 40_000

        package init(restartPages: Int = 16_000, backstopPages: Int = 40_000) {
            self.restartPages = restartPages
            self.backstopPages = backstopPages
        }
    }

    /// `synchronous`: `full` syncs the WAL at every commit (nothing acked is lost on a power loss);
    /// `normal` only at checkpoints (see `Settings.sqliteSynchronous`).
    package init(path: String, wal: WALLimits = WALLimits(), synchronous: String = "full") throws {
        self.path = path
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) }
        var config = Configuration()
        config.label = "switchboard-store"
        // WAL with synchronous=FULL: a commit is on disk before its answer, so before its inbound message is
        // acked. NORMAL survives a process crash but a power loss may lose the last commits.
        let mode = synchronous == "normal" ? "NORMAL" : "FULL"
        config.prepareDatabase { db in
            // Checkpoints run on a thread of their own (`Checkpointer`), not in the commits.
            try db.execute(sql: "PRAGMA wal_autocheckpoint = \(wal.backstopPages)")
        }
        config.busyMode = .timeout(10)
        pool = try DatabasePool(path: path, configuration: config)
        // On the writer, after GRDB's own WAL set-up (which chooses NORMAL): commits are what must be durable.
        try pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = \(mode)")
            // The writer's page cache: 32 MiB instead of SQLite's 2 MiB, so the indexes' upper pages stay in
            // it as the store grows (a commit touches the processed-id, reference and timeline B-trees).
            try db.execute(sql: "PRAGMA cache_size = -32768")
        }
        try Self.migrator.migrate(pool)
        checkpointer = try Checkpointer(path: path, writer: pool, restartPages: wal.restartPages)
    }

    deinit {
        checkpointer.stop()
    }

    /// Checkpoints the WAL on the calling thread until the store goes or `running` says no: the body of
    /// the store's `RoleService` in a group (Wiring's Stores.open). A store nothing runs this for (a CLI
    /// command) relies on the writer's own automatic checkpoint.
    package func checkpoint(while running: () -> Bool) {
        checkpointer.run(while: running)
    }

    /// For a program without a service group (the benchmark): the checkpointer on a thread of its own
    /// until the store goes.
    package func checkpointInBackground() {
        let thread = Thread { [checkpointer] in checkpointer.run { true } }
        thread.name = "sqlite-checkpoint"
        thread.start()
    }

    /// The writer connection's `PRAGMA synchronous` (1 NORMAL, 2 FULL), for tests and diagnostics.
    package func synchronousLevel() throws -> Int {
        try pool.write { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 }
    }

    /// GRDB's migrator over `SQLiteSchema.migrations`: each applied once, by its identifier.
    private static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        for (identifier, sql) in SQLiteSchema.migrations {
            m.registerMigration(identifier) { db in try db.execute(sql: sql) }
        }
        return m
    }

    package func find(_ refs: [TicketRef]) throws -> ConversationSnapshot? {
        try pool.read { db in try Self.find(db, refs) }
    }

    /// One read transaction for the whole batch, and none for the tickets the cache knows.
    package func find(batch: [[TicketRef]]) throws -> [ConversationSnapshot?] {
        try cached(batch, known: { $0.find($1) }, read: { try Self.find($0, $1) })
    }

    /// Answers from the cache where it can, reads the rest in one read transaction and remembers it.
    private func cached<Key>(
        _ keys: [Key], known lookup: (SnapshotCache, Key) -> ConversationSnapshot?,
        read: (Database, Key) throws -> ConversationSnapshot?
    ) throws -> [ConversationSnapshot?] {
        let (known, generation) = cache.withLock { c in (keys.map { lookup(c, $0) }, c.generation) }
        let missing = keys.indices.filter { known[$0] == nil }
        if missing.isEmpty { return known }
        let fetched = try pool.read { db in try missing.map { try read(db, keys[$0]) } }
        remember(fetched.compactMap { $0 }, readAt: generation)
        var answer = known
        for (i, s) in zip(missing, fetched) { answer[i] = s }
        return answer
    }

    /// Keeps snapshots read from the database, unless a commit happened since `generation` (they may be old).
    private func remember(_ snapshots: [ConversationSnapshot], readAt generation: UInt64) {
        guard !snapshots.isEmpty else { return }
        cache.withLock { c in
            guard c.generation == generation else { return }
            for s in snapshots { c.keep(s) }
        }
    }

    private static func find(_ db: Database, _ refs: [TicketRef]) throws -> ConversationSnapshot? {
        for ref in refs {
            if let id = try String.fetchOne(
                db.cachedStatement(sql: "SELECT conversation_id FROM reference WHERE endpoint = ? AND ticket_id = ?"),
                arguments: [ref.endpoint, ref.ticketId])
            {
                return try snapshot(db, id: id)
            }
        }
        return nil
    }

    package func conversation(id: String) throws -> ConversationSnapshot? {
        try pool.read { db in try Self.snapshot(db, id: id) }
    }

    package func conversations(ids: [String]) throws -> [ConversationSnapshot?] {
        try cached(ids, known: { $0.conversations[$1] }, read: { try Self.snapshot($0, id: $1) })
    }

    package func outbound(messageIds: [String]) throws -> [StoredOutbound?] {
        try pool.read { db in
            try messageIds.map {
                try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM outbox WHERE message_id = ?"), arguments: [$0]).map(Self.outbound)
            }
        }
    }

    static func snapshot(_ db: Database, id: String) throws -> ConversationSnapshot? {
        guard let version = try Int.fetchOne(db.cachedStatement(sql: "SELECT version FROM conversation WHERE id = ?"), arguments: [id]) else {
            return nil
        }
        var attributes: [String: JSON] = [:]
        for row in try Row.fetchAll(db.cachedStatement(sql: "SELECT name, value FROM attribute WHERE conversation_id = ?"), arguments: [id]) {
            let text: String = row["value"]
            attributes[row["name"]] = (try? JSON.parse(text)) ?? .string(text)
        }
        var counters: [String: Int] = [:]
        for row in try Row.fetchAll(db.cachedStatement(sql: "SELECT name, value FROM counter WHERE conversation_id = ?"), arguments: [id]) {
            counters[row["name"]] = row["value"]
        }
        return ConversationSnapshot(
            id: id, version: version, references: try references(db, id), attributes: attributes, counters: counters)
    }

    private static func references(_ db: Database, _ id: String) throws -> [String: String] {
        var refs: [String: String] = [:]
        for row in try Row.fetchAll(
            db.cachedStatement(sql: "SELECT endpoint, ticket_id FROM reference WHERE conversation_id = ? ORDER BY created_at"), arguments: [id])
        {
            refs[row["endpoint"]] = row["ticket_id"]
        }
        return refs
    }

    package func references(conversationId: String) throws -> [String: String] {
        try pool.read { db in try Self.references(db, conversationId) }
    }

    package func outbound(messageId: String) throws -> StoredOutbound? {
        try pool.read { db in
            try Row.fetchOne(db.cachedStatement(sql: "SELECT * FROM outbox WHERE message_id = ?"), arguments: [messageId]).map(Self.outbound)
        }
    }

    static func outbound(_ row: Row) -> StoredOutbound {
        StoredOutbound(
            messageId: row["message_id"], conversationId: row["conversation_id"],
            inbound: InboundKey(row["inbound_endpoint"], row["inbound_message_id"]), target: row["target"],
            type: row["type"], rule: row["rule"], body: row["body"], delayMs: row["delay_ms"],
            kind: StoredOutbound.Kind(rawValue: row["kind"]) ?? .message)
    }

    /// Callers' commits through one transaction when they arrive together (see `GroupCommit`). Each caller's
    /// commits keep their own chain (below) and their own answer: should the shared transaction fail, each
    /// caller's commits are written again alone, so one caller's refused content fails only that caller.
    package func commit(_ commits: [Commit]) throws -> [CommitOutcome] {
        try writers.submit(commits) { groups in commit(groups: groups) }
    }

    package func commit(groups: [[Commit]]) -> [Result<[CommitOutcome], any Error>] {
        if groups.count > 1, let all = try? write(groups) { return all.map { .success($0) } }
        return groups.map { group in Result { try write([group])[0] } }
    }

    /// Commits of one or more callers in one transaction; the outcomes per caller.
    private func write(_ groups: [[Commit]]) throws -> [[CommitOutcome]] {
        let result: [(outcomes: [CommitOutcome], applied: [Bool])]
        do {
            result = try pool.write { db in
                try groups.map { commits in
                    var outcomes: [CommitOutcome] = []
                    var applied: [Bool] = []
                    // A later commit of a conversation was decided on top of the earlier ones of this call
                    // (the worker's overlay): once one of them is not applied, the rest of the chain is stale,
                    // even where its expected version happens to match what another writer made.
                    var broken: Set<String> = []
                    for c in commits {
                        var didApply = false
                        let outcome = broken.contains(c.conversationId) ? .stale : try Self.apply(c, db, applied: &didApply)
                        if case .committed = outcome {} else { broken.insert(c.conversationId) }
                        outcomes.append(outcome)
                        applied.append(didApply)
                    }
                    return (outcomes, applied)
                }
            }
        } catch {
            cache.withLock { c in
                c.generation += 1
                for commit in groups.joined() { c.drop(commit.conversationId) }
            }
            // What SQLite refuses for the content (too big, a constraint) is the same on every attempt.
            if let e = error as? DatabaseError, [.SQLITE_TOOBIG, .SQLITE_CONSTRAINT, .SQLITE_MISMATCH].contains(e.resultCode) {
                throw StoreError("SQLite refused the commit: \(e.message ?? "\(e.resultCode)")", code: .refused)
            }
            throw error
        }
        checkpointer.committed()
        cache.withLock { c in
            c.generation += 1
            for (commits, r) in zip(groups, result) {
                for (commit, applied) in zip(commits, r.applied) {
                    // Built on what the cache holds (or a new conversation): the cache follows. Anything else
                    // (stale, duplicate, a replayed attempt): forget it, the database says.
                    if applied, let next = Self.after(commit, base: c.conversations[commit.conversationId]) {
                        c.keep(next)
                    } else {
                        c.drop(commit.conversationId)
                    }
                }
            }
        }
        return result.map(\.outcomes)
    }

    /// The conversation after an applied commit, if `base` is what it was decided against.
    private static func after(_ c: Commit, base: ConversationSnapshot?) -> ConversationSnapshot? {
        var s: ConversationSnapshot
        if c.expectedVersion == 0 {
            s = ConversationSnapshot(id: c.conversationId)
        } else if let base, base.version == c.expectedVersion {
            s = base
        } else {
            return nil
        }
        s.version = c.expectedVersion + 1
        for ref in c.newReferences { s.references[ref.endpoint] = ref.ticketId }
        // A value reads back from its serialized text as it was (numbers and strings round-trip exactly).
        for (name, value) in c.attributes { s.attributes[name] = value }
        for (name, value) in c.counters { s.counters[name] = value }
        return s
    }

    private static func apply(_ c: Commit, _ db: Database, applied: inout Bool) throws -> CommitOutcome {
        if let row = try Row.fetchOne(
            db.cachedStatement(sql: "SELECT conversation_id, attempt, digest, processed_at FROM processed WHERE endpoint = ? AND message_id = ?"),
            arguments: [c.inbound.endpoint, c.inbound.messageId])
        {
            let conversation: String = row["conversation_id"]
            let attempt: String = row["attempt"]
            if !c.attempt.isEmpty, attempt == c.attempt, conversation == c.conversationId {
                return .committed(version: c.expectedVersion + 1)
            }
            let digest: String = row["digest"]
            if !digest.isEmpty, !c.digest.isEmpty, digest != c.digest {
                return .conflict(conversationId: conversation, digest: digest, at: Date(timeIntervalSince1970: row["processed_at"]))
            }
            let rows = try Row.fetchAll(
                db.cachedStatement(sql: "SELECT * FROM outbox WHERE inbound_endpoint = ? AND inbound_message_id = ? ORDER BY seq"),
                arguments: [c.inbound.endpoint, c.inbound.messageId])
            return .duplicate(conversationId: conversation, outbox: rows.map(outbound))
        }
        let at = c.at.timeIntervalSince1970
        let row = try Row.fetchOne(
            db.cachedStatement(sql: "SELECT version, last_timeline FROM conversation WHERE id = ?"), arguments: [c.conversationId])
        let current: Int? = row?["version"]
        guard (current ?? 0) == c.expectedVersion else { return .stale }
        // A reference taken by another conversation meanwhile makes the decision stale too.
        for ref in c.newReferences {
            if let owner = try String.fetchOne(
                db.cachedStatement(sql: "SELECT conversation_id FROM reference WHERE endpoint = ? AND ticket_id = ?"),
                arguments: [ref.endpoint, ref.ticketId]), owner != c.conversationId
            {
                return .stale
            }
        }
        let version = c.expectedVersion + 1
        // The timeline first: the conversation row holds its newest row's id (see `timelineRows`).
        var last: Int64? = row?["last_timeline"]
        var start = c.timeline.startIndex
        while start < c.timeline.endIndex {
            let conversation = c.timeline[start].conversationId
            let end = c.timeline[start...].firstIndex { $0.conversationId != conversation } ?? c.timeline.endIndex
            let encoded = Self.encode(c.timeline[start..<end])
            // Entries of another conversation (the engine writes none today) go on that conversation's chain.
            let prev = conversation == c.conversationId
                ? last : try Int64.fetchOne(db.cachedStatement(sql: "SELECT last_timeline FROM conversation WHERE id = ?"), arguments: [conversation])
            try db.cachedStatement(sql: "INSERT INTO timeline_entries (conversation_id, entries, body, prev) VALUES (?, ?, ?, ?)")
                .execute(arguments: [conversation, encoded.entries, encoded.body, prev])
            if conversation == c.conversationId {
                last = db.lastInsertedRowID
            } else {
                try db.cachedStatement(sql: "UPDATE conversation SET last_timeline = ? WHERE id = ?").execute(arguments: [db.lastInsertedRowID, conversation])
            }
            start = end
        }
        if current == nil {
            try db.cachedStatement(sql: "INSERT INTO conversation (id, version, created_at, updated_at, last_timeline) VALUES (?, ?, ?, ?, ?)")
                .execute(arguments: [c.conversationId, version, at, at, last])
        } else {
            try db.cachedStatement(sql: "UPDATE conversation SET version = ?, updated_at = ?, last_timeline = ? WHERE id = ?")
                .execute(arguments: [version, at, last, c.conversationId])
        }
        for ref in c.newReferences {
            try db.cachedStatement(sql: "INSERT OR IGNORE INTO reference (endpoint, ticket_id, conversation_id, created_at) VALUES (?, ?, ?, ?)").execute(arguments: [ref.endpoint, ref.ticketId, c.conversationId, at])
        }
        try db.cachedStatement(sql: "INSERT INTO processed (endpoint, message_id, conversation_id, processed_at, attempt, digest) VALUES (?, ?, ?, ?, ?, ?)").execute(arguments: [c.inbound.endpoint, c.inbound.messageId, c.conversationId, at, c.attempt, c.digest])
        for (seq, o) in c.outbox.enumerated() {
            try db.cachedStatement(sql: """
                    INSERT INTO outbox (message_id, conversation_id, inbound_endpoint, inbound_message_id, seq, target, type, rule, body, delay_ms, kind, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """).execute(arguments: [o.messageId, o.conversationId, o.inbound.endpoint, o.inbound.messageId, seq, o.target, o.type, o.rule, o.body, o.delayMs, o.kind.rawValue, at])
        }
        for (name, value) in c.attributes {
            if let value {
                try db.cachedStatement(sql: "INSERT INTO attribute (conversation_id, name, value, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (conversation_id, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at").execute(arguments: [c.conversationId, name, value.serializedString, at])
            } else {
                try db.cachedStatement(sql: "DELETE FROM attribute WHERE conversation_id = ? AND name = ?").execute(arguments: [c.conversationId, name])
            }
        }
        for messageId in c.answered {
            try db.cachedStatement(sql: "UPDATE outbox SET answered_at = ? WHERE message_id = ?").execute(arguments: [at, messageId])
        }
        for (messageId, failure) in c.failedOutbound {
            try db.cachedStatement(sql: "UPDATE outbox SET failed_at = ?, failure = ? WHERE message_id = ?")
                .execute(arguments: [at, failure, messageId])
        }
        for (name, value) in c.counters {
            try db.cachedStatement(sql: "INSERT INTO counter (conversation_id, name, value, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (conversation_id, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at").execute(arguments: [c.conversationId, name, value, at])
        }
        applied = true
        return .committed(version: version)
    }
}
