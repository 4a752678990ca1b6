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
        }
        #expect(same(try store.timeline(conversationId: "c1"), [older] + entries))
        let record = try #require(try await store.record(conversationId: "c1"))
        #expect(same(record.timeline, [older] + entries))
        let recent = try await store.recent(before: nil, limit: 10, conversationId: "c1")
        #expect(same(recent.reversed().flatMap(\.entries), [older] + entries))
    }
}
