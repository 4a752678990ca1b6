import Foundation
import GRDB
import Testing

@testable import Rules
@testable import Store

/// The SQLite store keeps a commit's timeline entries as one row (one insert and one index entry per
/// message). A database from before that keeps its old rows, which come first.
@Suite struct SQLiteTimelineTests {
    /// Equal, with times to the microsecond (seconds since 1970 as a double do not round-trip every bit of a `Date`).
    func same(_ a: [TimelineEntry], _ b: [TimelineEntry]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { x, y in
            var x = x
            guard abs(x.at.timeIntervalSince(y.at)) < 1e-6 else { return false }
            x.at = y.at
            return x == y
        }
    }

    @Test func oneRowPerCommitAndOlderRowsFirst() throws {
        let file = temporarySQLitePath("sb-timeline")
        let store = try SQLiteStore(path: file)
        let at = Date(timeIntervalSince1970: 1_790_000_000.123456)
        let entries = [
            TimelineEntry(conversationId: "c1", at: at, kind: .received, endpoint: "customer-a", who: "bob", messageId: "m2",
                          detail: "update of customer-a/INC1 with \"quotes\", \\ and a\nnewline"),
            TimelineEntry(conversationId: "c1", at: at.addingTimeInterval(0.001), kind: .sent, endpoint: "vendor-x", messageId: "o2",
                          rule: "update-at-vendor", detail: "update to vendor-x: {\"k\":\"é\"}"),
        ]
        let commit = Commit(
            inbound: InboundKey("customer-a", "m2"), conversationId: "c1", expectedVersion: 0,
            newReferences: [TicketRef("customer-a", "INC1")], timeline: entries, at: at)
        #expect(try store.commit([commit]) == [.committed(version: 1)])

        // As an older version of Switchboard wrote them: one row per entry in the old table.
        let raw = try DatabaseQueue(path: file)
        let old = TimelineEntry(conversationId: "c1", at: at.addingTimeInterval(-60), kind: .received, endpoint: "customer-a",
                                messageId: "m1", detail: "create of customer-a/INC1")
        try raw.write { db in
            try db.execute(
                sql: "INSERT INTO timeline (conversation_id, at, kind, endpoint, who, message_id, rule, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                arguments: [old.conversationId, old.at.timeIntervalSince1970, old.kind.rawValue, old.endpoint, old.who, old.messageId, old.rule, old.detail])
        }
        #expect(try raw.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM timeline_entries") } == 1)

        #expect(same(try store.timeline(conversationId: "c1"), [old] + entries))
        #expect(same(try SQLiteStore(path: file).timeline(conversationId: "c1"), [old] + entries))
        #expect(try store.timeline(conversationId: "other").isEmpty)
    }

    /// A message's body is kept beside its row's entries, not escaped inside them; a second body in the same
    /// row stays inline, and rows written before the column existed (body inside `entries`) read as before.
    @Test func bodiesInTheirOwnColumnAndOlderRowsStillRead() async throws {
        let file = temporarySQLitePath("sb-timeline-body")
        let store = try SQLiteStore(path: file)
        let at = Date(timeIntervalSince1970: 1_790_000_000.5)
        let body = #"{"number":"INC1","description":"line 1\nline 2 "quoted" é ✓"}"#
        var entries = [
            TimelineEntry(conversationId: "c1", at: at, kind: .received, endpoint: "customer-a", who: "bob", messageId: "m2",
                          detail: "update of customer-a/INC1", body: body),
            TimelineEntry(conversationId: "c1", at: at, kind: .noRule, endpoint: "customer-a", messageId: "m2",
                          detail: "no rule matched", body: #"[{"rule":"r","reason":"no"}]"#),
        ]
        entries[0].sinceIntakeMs = 42
        let commit = Commit(
            inbound: InboundKey("customer-a", "m2"), conversationId: "c1", expectedVersion: 0,
            newReferences: [TicketRef("customer-a", "INC1")], timeline: entries, at: at)
        #expect(try store.commit([commit]) == [.committed(version: 1)])

        let raw = try DatabaseQueue(path: file)
        let row = try #require(try raw.read { db in try Row.fetchOne(db, sql: "SELECT entries, body FROM timeline_entries") })
        #expect(row["body"] as String? == body)
        let inRow: String = row["entries"]
        #expect(!inRow.contains("INC1\\\"") && !inRow.contains("quoted"), "the first body is not escaped into the entries: \(inRow)")
        #expect(inRow.contains("reason"), "a second body stays inline: \(inRow)")

        // As the previous version wrote it: the body inside the entries, no body column value.
        let older = TimelineEntry(conversationId: "c1", at: at.addingTimeInterval(-60), kind: .received, endpoint: "customer-a",
                                  messageId: "m1", detail: "create of customer-a/INC1", body: #"{"number":"INC1"}"#)
        try await raw.write { db in
            try db.execute(
                sql: "INSERT INTO timeline_entries (id, conversation_id, entries) VALUES (0, 'c1', ?)",
                arguments: [#"[{"at":\#(older.at.timeIntervalSince1970),"kind":"received","endpoint":"customer-a","message_id":"m1","detail":"create of customer-a/INC1","body":"{\"number\":\"INC1\"}"}]"#])
            // Chained before the newer row, as schema v13's migration chains the rows it finds.
            try db.execute(sql: "UPDATE timeline_entries SET prev = 0 WHERE id = 1")
        }
        #expect(same(try store.timeline(conversationId: "c1"), [older] + entries))
        let record = try #require(try await store.record(conversationId: "c1"))
        #expect(same(record.timeline, [older] + entries))
        let recent = try await store.recent(before: nil, limit: 10, conversationId: "c1")
        #expect(same(recent.reversed().flatMap(\.entries), [older] + entries))
    }

    /// The compact row form: fields equal to the entry before's, and details the typed fields say already, are
    /// left out and come back when read; a field that goes away after an entry that had it reads as absent;
    /// a detail that differs from the derived one (a retry policy's match, a sent entry worded otherwise) is kept.
    @Test func compactRowsReadBackEveryFieldAndLeaveOutWhatIsDerived() throws {
        let file = temporarySQLitePath("sb-timeline-compact")
        let store = try SQLiteStore(path: file)
        let at = Date(timeIntervalSince1970: 1_790_000_000.25)
        func entry(_ kind: TimelineKind, _ endpoint: String?, _ messageId: String?, _ rule: String?, _ detail: String, at t: Date = at) -> TimelineEntry {
            TimelineEntry(conversationId: "c1", at: t, kind: kind, endpoint: endpoint, messageId: messageId, rule: rule, detail: detail)
        }
        var received = entry(.received, "customer-a", "m1", nil, "update of customer-a/INC1")
        received.who = "alice"
        received.body = #"{"number":"INC1"}"#
        received.messageType = "update"
        received.configuration = "0123456789ab"
        received.met = 3
        var sent = entry(.sent, "vendor-x", "sb-out-1", "update-at-vendor", TimelineEntry.sentDetail(type: "update", target: "vendor-x", delayMs: 60_000))
        sent.messageType = "update"
        sent.delayMs = 60_000
        var worded = entry(.sent, "vendor-x", "sb-out-2", "update-at-vendor", "update to vendor-x: {\"as\":\"an older release said\"}")
        worded.messageType = "update"
        let entries = [
            received,
            entry(.ruleMatched, "customer-a", "m1", "update-at-vendor", TimelineEntry.matchedDetail(rule: "update-at-vendor")),
            entry(.ruleMatched, "customer-a", "m1", "retry:vendor-locked", "retry policy 'vendor-locked' matched"),
            entry(.attribute, "customer-a", "m1", "update-at-vendor", "vendor_fields: (none) -> 1"),
            sent, worded,
            entry(.warning, nil, nil, nil, "a warning about nothing in particular", at: at.addingTimeInterval(0.5)),
        ]
        let commit = Commit(
            inbound: InboundKey("customer-a", "m1"), conversationId: "c1", expectedVersion: 0,
            newReferences: [TicketRef("customer-a", "INC1")], timeline: entries, at: at)
        #expect(try store.commit([commit]) == [.committed(version: 1)])
        #expect(same(try store.timeline(conversationId: "c1"), entries))

        let raw = try DatabaseQueue(path: file)
        let row: String = try #require(try raw.read { db in try String.fetchOne(db, sql: "SELECT entries FROM timeline_entries") })
        #expect(row.hasPrefix(#"{"v":2,"entries":["#))
        #expect(!row.contains("matched\"") || row.contains("retry policy 'vendor-locked' matched"), "a rule's match is derived: \(row)")
        #expect(!row.contains("rule 'update-at-vendor' matched") && !row.contains("leaves in"), "derived details are left out: \(row)")
        #expect(row.contains("an older release said"), "a detail other than the derived one is kept: \(row)")
        #expect(row.components(separatedBy: "\"customer-a\"").count == 2, "the endpoint is written once while it stays the same: \(row)")
        #expect(row.components(separatedBy: "\"at\":").count == 3, "the time is written when it changes: \(row)")
        #expect(row.contains(#""endpoint":null"#) && row.contains(#""rule":null"#), "a field that went away says so: \(row)")
    }

    /// Schema v13: a conversation's rows are found from its row back along `prev`, with no index by
    /// conversation; the admin's feed of one conversation pages along the chain, and retention removes it.
    @Test func rowsAreChainedPerConversationWithoutAnIndex() async throws {
        let file = temporarySQLitePath("sb-timeline-chain")
        let store = try SQLiteStore(path: file)
        let at = Date(timeIntervalSince1970: 1_790_000_000)
        var expected: [String: [TimelineEntry]] = [:]
        for n in 0..<3 {
            for c in ["c1", "c2"] {
                let e = TimelineEntry(conversationId: c, at: at.addingTimeInterval(Double(n)), kind: .received, endpoint: "customer-a",
                                      messageId: "\(c)-m\(n)", detail: "update \(n) of \(c)")
                #expect(try store.commit([Commit(inbound: InboundKey("customer-a", "\(c)-m\(n)"), conversationId: c, expectedVersion: n,
                                                 timeline: [e], at: e.at)]) == [.committed(version: n + 1)])
                expected[c, default: []].append(e)
            }
        }
        for c in ["c1", "c2"] { #expect(same(try store.timeline(conversationId: c), expected[c] ?? [])) }
        let raw = try DatabaseQueue(path: file)
        let indexes = try await raw.read { db in try String.fetchAll(db, sql: "SELECT name FROM pragma_index_list('timeline_entries')") }
        #expect(indexes.isEmpty, "no index by conversation: \(indexes)")

        // The feed of c1, a page of one at a time, newest first.
        let first = try await store.recent(before: nil, limit: 1, conversationId: "c1")
        let second = try await store.recent(before: first.last?.cursor, limit: 1, conversationId: "c1")
        let rest = try await store.recent(before: second.last?.cursor, limit: 5, conversationId: "c1")
        #expect((first + second + rest).flatMap(\.entries).map(\.detail) == ["update 2 of c1", "update 1 of c1", "update 0 of c1"])

        var retention = Settings.Retention()
        retention.conversationsDays = 1
        _ = try store.prune(now: at.addingTimeInterval(3 * 86_400), retention: retention, limit: 100)
        #expect(try await raw.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM timeline_entries") } == 0)
        #expect(try store.timeline(conversationId: "c1").isEmpty)
    }
}
