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
            TimelineEntry(conversationId: "c1", at: at, kind: "received", endpoint: "customer-a", who: "bob", messageId: "m2",
                          detail: "update of customer-a/INC1 with \"quotes\", \\ and a\nnewline"),
            TimelineEntry(conversationId: "c1", at: at.addingTimeInterval(0.001), kind: "sent", endpoint: "vendor-x", messageId: "o2",
                          rule: "update-at-vendor", detail: "update to vendor-x: {\"k\":\"é\"}"),
        ]
        let commit = Commit(
            inbound: InboundKey("customer-a", "m2"), conversationId: "c1", expectedVersion: 0,
            newReferences: [TicketRef("customer-a", "INC1")], timeline: entries, at: at)
        #expect(try store.commit([commit]) == [.committed(version: 1)])

        // As an older version of Switchboard wrote them: one row per entry in the old table.
        let raw = try DatabaseQueue(path: file)
        let old = TimelineEntry(conversationId: "c1", at: at.addingTimeInterval(-60), kind: "received", endpoint: "customer-a",
                                messageId: "m1", detail: "create of customer-a/INC1")
        try raw.write { db in
            try db.execute(
                sql: "INSERT INTO timeline (conversation_id, at, kind, endpoint, who, message_id, rule, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                arguments: [old.conversationId, old.at.timeIntervalSince1970, old.kind, old.endpoint, old.who, old.messageId, old.rule, old.detail])
        }
        #expect(try raw.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM timeline_entries") } == 1)

        #expect(same(try store.timeline(conversationId: "c1"), [old] + entries))
        #expect(same(try SQLiteStore(path: file).timeline(conversationId: "c1"), [old] + entries))
        #expect(try store.timeline(conversationId: "other").isEmpty)
    }
}
