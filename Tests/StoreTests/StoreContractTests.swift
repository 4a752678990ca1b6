import Foundation
import Logging
import Testing

@testable import JSONPath
@testable import Rules
@testable import Store

// One contract, two backends: every test body below runs against SQLite and against a real PostgreSQL
// (the server `make test` and `.ci/run` start; its URL comes in SB_TEST_POSTGRES_URL).

/// Runs blocking store code on a thread of its own: the stores block their caller (as the worker
/// threads do), which must never be one of Swift concurrency's few threads.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}

func outbound(_ id: String, conversation: String, inbound: InboundKey) -> StoredOutbound {
    StoredOutbound(messageId: id, conversationId: conversation, inbound: inbound, target: "vendor-x", type: "create",
                   rule: "r", body: Data("{\"id\":\"\(id)\",\"pad\":\"\(String(repeating: "é-x", count: 100))\"}".utf8))
}

/// Opens stores of one backend; `reopen` opens the same database again (a second store process).
struct Backend: Sendable {
    var name: String
    var open: @Sendable () throws -> (store: ConversationStore, reopen: @Sendable () throws -> ConversationStore)

    static let sqlite = Backend(name: "sqlite") {
        let path = temporarySQLitePath("sb-store")
        return (try SQLiteStore(path: path), { try SQLiteStore(path: path) })
    }

    struct NoServer: Error, CustomStringConvertible {
        var description: String {
            "SB_TEST_POSTGRES_URL is not set: `make test` starts a PostgreSQL and sets it (`make test-unit` skips these)"
        }
    }

    /// Each store gets a schema of its own in the test server's database.
    static let postgres = Backend(name: "postgres") {
        guard let base = ProcessInfo.processInfo.environment["SB_TEST_POSTGRES_URL"], !base.isEmpty else { throw NoServer() }
        let url = base + (base.contains("?") ? "&" : "?") + "schema=t\(UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: ""))"
        let logger = Logger(label: "store-test")
        return (try PostgresStore.standalone(url: url, logger: logger), { try PostgresStore.standalone(url: url, logger: logger) })
    }
}

enum StoreContract {
    static func createFindAndLink(_ backend: Backend) throws {
        let store = try backend.open().store
        let now = Date()
        let key = InboundKey("customer-a", "m1")
        let outcome = try store.commit([Commit(
            inbound: key, conversationId: "c1", expectedVersion: 0, newReferences: [TicketRef("customer-a", "INC1")],
            timeline: [TimelineEntry(conversationId: "c1", at: now, kind: .received, endpoint: "customer-a", who: "alice", detail: "x")],
            outbox: [outbound("o1", conversation: "c1", inbound: key)], attributes: ["origin": .some("portal"), "gone": JSON?.none],
            counters: ["updates": 1], at: now)])
        #expect(outcome == [.committed(version: 1)])
        // A second endpoint's reference links to the same conversation.
        let key2 = InboundKey("vendor-x", "v1")
        #expect(try store.commit([Commit(inbound: key2, conversationId: "c1", expectedVersion: 1,
                                         newReferences: [TicketRef("vendor-x", "VX-1")], counters: ["updates": 2], at: now)])
                == [.committed(version: 2)])
        let byVendor = try #require(try store.find([TicketRef("vendor-x", "VX-1")]))
        #expect(byVendor.id == "c1")
        #expect(byVendor.version == 2)
        #expect(byVendor.references == ["customer-a": "INC1", "vendor-x": "VX-1"])
        #expect(byVendor.attributes == ["origin": "portal"])
        #expect(byVendor.counters == ["updates": 2])
        #expect(try store.references(conversationId: "c1") == ["customer-a": "INC1", "vendor-x": "VX-1"])
        #expect(try store.find([TicketRef("vendor-x", "VX-404")]) == nil)
        let batch = try store.find(batch: [[TicketRef("vendor-x", "VX-404"), TicketRef("customer-a", "INC1")], [TicketRef("x", "y")]])
        #expect(batch.map { $0?.id } == ["c1", nil])
        let stored = try #require(try store.outbound(messageId: "o1"))
        #expect(stored == outbound("o1", conversation: "c1", inbound: key))
        #expect(try store.outbound(messageIds: ["o-404", "o1"]) == [nil, stored])
        #expect(try store.conversations(ids: ["c1", "c-404"]).map { $0?.version } == [2, nil])
        let timeline = try store.timeline(conversationId: "c1")
        #expect(timeline.map(\.who) == ["alice"])
        #expect(abs(timeline[0].at.timeIntervalSince(now)) < 0.001)
    }

    static func duplicateInboundReturnsTheStoredOutbox(_ backend: Backend) throws {
        let store = try backend.open().store
        let key = InboundKey("customer-a", "m1")
        let c = Commit(inbound: key, conversationId: "c1", expectedVersion: 0, newReferences: [TicketRef("customer-a", "INC1")],
                       outbox: [outbound("o1", conversation: "c1", inbound: key), outbound("o2", conversation: "c1", inbound: key)], at: Date())
        #expect(try store.commit([c]) == [.committed(version: 1)])
        var again = c
        again.expectedVersion = 1
        again.outbox = []
        let outcome = try store.commit([again])
        guard case .duplicate(let conversation, let outbox) = outcome.first else {
            Issue.record("a resent message id was applied twice: \(outcome)")
            return
        }
        #expect(conversation == "c1")
        #expect(outbox.map(\.messageId) == ["o1", "o2"])
        #expect(try store.conversation(id: "c1")?.version == 1)
    }

    /// The store's answer was lost and the same request served again (store restarted, request redelivered):
    /// it is answered as committed, not as someone else's duplicate, and applied once.
    static func theSameRequestTwiceIsCommittedOnce(_ backend: Backend) throws {
        let store = try backend.open().store
        let key = InboundKey("customer-a", "m1")
        let c = Commit(inbound: key, conversationId: "c1", expectedVersion: 0, newReferences: [TicketRef("customer-a", "INC1")],
                       outbox: [outbound("o1", conversation: "c1", inbound: key)], counters: ["n": 1], at: Date(), attempt: "attempt-1")
        #expect(try store.commit([c]) == [.committed(version: 1)])
        #expect(try store.commit([c]) == [.committed(version: 1)])
        #expect(try store.conversation(id: "c1")?.version == 1)
        #expect(try store.conversation(id: "c1")?.counters == ["n": 1])
        // Another attempt with the same inbound message (an ESB resend, a redelivery) is a duplicate.
        var other = c
        other.attempt = "attempt-2"
        guard case .duplicate(_, let outbox) = try store.commit([other]).first else {
            Issue.record("a second attempt was not recognised as a duplicate")
            return
        }
        #expect(outbox.map(\.messageId) == ["o1"])
    }

    static func staleVersionIsRefused(_ backend: Backend) throws {
        let store = try backend.open().store
        let now = Date()
        #expect(try store.commit([Commit(inbound: InboundKey("a", "1"), conversationId: "c1", expectedVersion: 0, at: now)]) == [.committed(version: 1)])
        // Two writers decided against version 1; the second loses, and nothing of it is applied.
        let outcomes = try store.commit([
            Commit(inbound: InboundKey("a", "2"), conversationId: "c1", expectedVersion: 1, counters: ["n": 1], at: now),
            Commit(inbound: InboundKey("a", "3"), conversationId: "c1", expectedVersion: 1,
                   outbox: [outbound("o3", conversation: "c1", inbound: InboundKey("a", "3"))], counters: ["n": 7], at: now),
        ])
        #expect(outcomes == [.committed(version: 2), .stale])
        #expect(try store.conversation(id: "c1")?.counters == ["n": 1])
        #expect(try store.outbound(messageId: "o3") == nil)
        // Creating a conversation that exists already is stale as well.
        #expect(try store.commit([Commit(inbound: InboundKey("a", "4"), conversationId: "c1", expectedVersion: 0, at: now)]) == [.stale])
        // A refused message was not recorded as processed: its next attempt commits.
        #expect(try store.commit([Commit(inbound: InboundKey("a", "3"), conversationId: "c1", expectedVersion: 2, at: now)])
                == [.committed(version: 3)])
    }

    /// A worker decided two messages of one conversation in a batch, the second on top of the first
    /// (expected versions 1 and 2). Another writer moved the conversation to 2 meanwhile: the first is
    /// stale, and so is the second, although its expected version matches the other writer's.
    static func aChainAfterAStaleCommitIsStale(_ backend: Backend) throws {
        let store = try backend.open().store
        let now = Date()
        _ = try store.commit([Commit(inbound: InboundKey("a", "0"), conversationId: "c1", expectedVersion: 0, at: now)])
        #expect(try store.commit([Commit(inbound: InboundKey("b", "1"), conversationId: "c1", expectedVersion: 1, counters: ["n": 100], at: now)])
                == [.committed(version: 2)])
        let outcomes = try store.commit([
            Commit(inbound: InboundKey("a", "1"), conversationId: "c1", expectedVersion: 1, counters: ["n": 1], at: now),
            Commit(inbound: InboundKey("x", "1"), conversationId: "c9", expectedVersion: 0, at: now),
            Commit(inbound: InboundKey("a", "2"), conversationId: "c1", expectedVersion: 2, counters: ["n": 2], at: now),
        ])
        #expect(outcomes == [.stale, .committed(version: 1), .stale])
        #expect(try store.conversation(id: "c1")?.counters == ["n": 100])
        // After a duplicate, too: the next commit was decided as if the duplicate had been applied again.
        let afterDuplicate = try store.commit([
            Commit(inbound: InboundKey("b", "1"), conversationId: "c1", expectedVersion: 2, at: now),
            Commit(inbound: InboundKey("a", "3"), conversationId: "c1", expectedVersion: 2, counters: ["n": 3], at: now),
        ])
        #expect(afterDuplicate.last == .stale)
        #expect(try store.conversation(id: "c1")?.version == 2)
    }

    /// An error ack that no rule handled marks the outbound message failed; an operator counts and lists them.
    static func failedOutboundIsCountedAndListed(_ backend: Backend) throws {
        let store = try backend.open().store
        let key = InboundKey("customer-a", "m1")
        _ = try store.commit([Commit(inbound: key, conversationId: "c1", expectedVersion: 0,
                                     outbox: [outbound("o1", conversation: "c1", inbound: key), outbound("o2", conversation: "c1", inbound: key)],
                                     at: Date())])
        #expect(try store.failedOutbound(limit: 10).count == 0)
        _ = try store.commit([Commit(inbound: InboundKey("vendor-x", "ack-1"), conversationId: "c1", expectedVersion: 1,
                                     failedOutbound: ["o2": #"{"code":"NOPE","message":"é"}"#], at: Date())])
        let (count, newest) = try store.failedOutbound(limit: 10)
        #expect(count == 1)
        #expect(newest.map(\.outbound.messageId) == ["o2"])
        #expect(newest.first?.failure == #"{"code":"NOPE","message":"é"}"#)
        #expect(newest.first?.outbound == outbound("o2", conversation: "c1", inbound: key))
    }

    /// The same message_id with another digest is another message: `conflict`, naming the first; the same
    /// digest is a resend (`duplicate`). Rows without a digest (older versions) count as resends.
    static func aReusedMessageIdIsAConflict(_ backend: Backend) throws {
        let store = try backend.open().store
        let key = InboundKey("customer-a", "m1")
        let at = Date(timeIntervalSince1970: 1_764_590_000.25)
        #expect(try store.commit([Commit(inbound: key, conversationId: "c1", expectedVersion: 0, digest: "d1", at: at)])
                == [.committed(version: 1)])
        let outcomes = try store.commit([
            Commit(inbound: key, conversationId: "c1", expectedVersion: 1, digest: "d2", at: Date()),
            Commit(inbound: key, conversationId: "c1", expectedVersion: 1, digest: "d1", at: Date()),
        ])
        guard case .conflict(let conversation, let digest, let first) = outcomes.first else {
            Issue.record("a reused message_id was not a conflict: \(outcomes)")
            return
        }
        #expect(conversation == "c1" && digest == "d1" && abs(first.timeIntervalSince(at)) < 0.001)
        guard case .duplicate = try store.commit([Commit(inbound: key, conversationId: "c1", expectedVersion: 1, digest: "d1", at: Date())]).first
        else {
            Issue.record("a resend with the same digest was not a duplicate")
            return
        }
        #expect(try store.conversation(id: "c1")?.version == 1)
    }

    /// Retention with an injected clock: commits made "days ago" (their `at`) are pruned by age, in
    /// rounds of `limit`; what is younger stays. An outbound message no ack has answered yet stays as long
    /// as conversations do (an ack may still come); an answered one goes with the bodies.
    /// What `rules replay --since` and `rules lint --history` read: the conversations changed in a window.
    static func conversationsChangedSince(_ backend: Backend) async throws {
        let store = try await onThread { try backend.open().store }
        let admin = try #require(store as? any AdminStore)
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        for (n, (id, age)) in [("c-a", 30.0), ("c-b", 1.0), ("c-c", 10.0)].enumerated() {
            let key = InboundKey("customer-a", "m\(n)")
            _ = try await onThread {
                try store.commit([Commit(
                    inbound: key, conversationId: id, expectedVersion: 0, newReferences: [TicketRef("customer-a", id)],
                    timeline: [TimelineEntry(conversationId: id, at: t0.addingTimeInterval(-age * 86_400), kind: .received, detail: "x")],
                    at: t0.addingTimeInterval(-age * 86_400))])
            }
        }
        #expect(try await admin.conversationIds(changedSince: nil) == ["c-b", "c-c", "c-a"])
        #expect(try await admin.conversationIds(changedSince: t0.addingTimeInterval(-15 * 86_400)) == ["c-b", "c-c"])
        #expect(try await admin.conversationIds(changedSince: t0) == [])
    }

    static func retentionPrunesByAge(_ backend: Backend) throws {
        let store = try backend.open().store
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        func daysAgo(_ d: Double) -> Date { now.addingTimeInterval(-d * 86_400) }
        // c-old: last changed 400 days ago. c-mid: 40 days ago. c-new: 2 days ago (plus a message 10 days ago).
        func make(_ conversation: String, _ age: Double, _ n: Int) throws {
            let key = InboundKey("customer-a", "\(conversation)-\(n)")
            _ = try store.commit([Commit(
                inbound: key, conversationId: conversation, expectedVersion: n, newReferences: n == 0 ? [TicketRef("customer-a", conversation)] : [],
                timeline: [TimelineEntry(conversationId: conversation, at: daysAgo(age), kind: .received, detail: "x")],
                outbox: [outbound("o-\(conversation)-\(n)", conversation: conversation, inbound: key)],
                attributes: ["a": .some("v")], counters: ["k": n + 1], at: daysAgo(age))])
        }
        // In time order, as a store receives them.
        try make("c-old", 400, 0)
        try make("c-mid", 40, 0)
        // c-mid sent a second message 40 days ago that no ack answered; an ack 35 days ago answered the first.
        let unanswered = InboundKey("customer-a", "c-mid-0b")
        _ = try store.commit([Commit(
            inbound: unanswered, conversationId: "c-mid", expectedVersion: 1,
            outbox: [outbound("o-c-mid-0b", conversation: "c-mid", inbound: unanswered)], at: daysAgo(40))])
        _ = try store.commit([Commit(
            inbound: InboundKey("vendor-x", "ack-1"), conversationId: "c-mid", expectedVersion: 2, answered: ["o-c-mid-0"],
            at: daysAgo(35))])
        try make("c-new", 10, 0)
        try make("c-new", 2, 1)
        var retention = Settings.Retention()
        retention.bodiesDays = 30
        retention.dedupeDays = 7
        retention.conversationsDays = 365
        var total = Pruned()
        while true {
            let round = try store.prune(now: now, retention: retention, limit: 1)
            total.bodies += round.bodies
            total.processed += round.processed
            total.conversations += round.conversations
            if !round.full(1) { break }
        }
        #expect(total == Pruned(bodies: 2, processed: 5, conversations: 1))
        // The year-old conversation is gone with what it held; the others keep theirs.
        #expect(try store.find([TicketRef("customer-a", "c-old")]) == nil)
        #expect(try store.conversation(id: "c-old") == nil)
        #expect(try store.timeline(conversationId: "c-old").isEmpty)
        #expect(try store.find([TicketRef("customer-a", "c-mid")])?.attributes == ["a": "v"])
        #expect(try store.timeline(conversationId: "c-mid").count == 1)
        // Answered bodies older than 30 days are gone; younger ones stay, and so does one still awaiting its
        // ack (until the conversations' 365 days, which took the year-old one).
        #expect(try store.outbound(messageIds: ["o-c-mid-0", "o-c-new-0", "o-c-new-1", "o-c-mid-0b", "o-c-old-0"]).map { $0 != nil }
                == [false, true, true, true, false])
        // Processed ids older than 7 days are forgotten: that message would now be applied again.
        guard case .committed = try store.commit([Commit(inbound: InboundKey("customer-a", "c-new-0"), conversationId: "c-new",
                                                         expectedVersion: 2, at: now)]).first
        else {
            Issue.record("a processed id older than the dedupe window was still remembered")
            return
        }
        guard case .duplicate = try store.commit([Commit(inbound: InboundKey("customer-a", "c-new-1"), conversationId: "c-new",
                                                         expectedVersion: 3, at: now)]).first
        else {
            Issue.record("a processed id inside the dedupe window was forgotten")
            return
        }
        #expect(try store.prune(now: now, retention: retention, limit: 100) == Pruned())
    }

    /// Both backends give a timeline back as it was written: bodies, hop times and the typed fields.
    static func timelineEntriesComeBackWhole(_ backend: Backend) throws {
        let store = try backend.open().store
        let at = Date(timeIntervalSince1970: 1_800_000_000.25)
        var received = TimelineEntry(conversationId: "c1", at: at, kind: .received, endpoint: "customer-a", who: "alice",
                                     messageId: "m1", detail: "update of customer-a/INC1", body: #"{"number":"INC1"}"#)
        received.sinceIntakeMs = 12
        received.messageType = "update"
        (received.configuration, received.met) = ("0123456789ab", 0)
        var sent = TimelineEntry(conversationId: "c1", at: at, kind: .sent, endpoint: "vendor-x", messageId: "o1", rule: "r",
                                 detail: "update to vendor-x (leaves in 1m): {}")
        sent.messageType = "update"
        sent.delayMs = 60_000
        var ack = TimelineEntry(conversationId: "c1", at: at.addingTimeInterval(2), kind: .ackError, endpoint: "vendor-x",
                                messageId: "a1", detail: "error ack of update o1 to vendor-x", body: #"{"status":"error"}"#)
        ack.messageType = "update"
        ack.answers = "o1"
        (ack.configuration, ack.met) = ("0123456789ab", 1)
        let key = InboundKey("customer-a", "m1")
        #expect(try store.commit([Commit(inbound: key, conversationId: "c1", expectedVersion: 0, newReferences: [TicketRef("customer-a", "INC1")],
                                         timeline: [received, sent], at: at)]) == [.committed(version: 1)])
        #expect(try store.commit([Commit(inbound: InboundKey("vendor-x", "a1"), conversationId: "c1", expectedVersion: 1,
                                         timeline: [ack], at: at)]) == [.committed(version: 2)])
        #expect(try store.timeline(conversationId: "c1") == [received, sent, ack])
    }

    static func referenceOwnedByAnotherConversationIsStale(_ backend: Backend) throws {
        let store = try backend.open().store
        let now = Date()
        _ = try store.commit([Commit(inbound: InboundKey("a", "1"), conversationId: "c1", expectedVersion: 0,
                                     newReferences: [TicketRef("vendor-x", "VX-1")], at: now)])
        #expect(try store.commit([Commit(inbound: InboundKey("a", "2"), conversationId: "c2", expectedVersion: 0,
                                         newReferences: [TicketRef("vendor-x", "VX-1")], at: now)]) == [.stale])
        #expect(try store.conversation(id: "c2") == nil)
    }

    /// An outbox id that exists already (a message applied again past the dedupe window, from an older
    /// release whose ids did not change with the state) is refused as content, never answered "stale":
    /// stale is retried, and this would be stale forever.
    static func aCollidingOutboxIdIsRefusedNotStale(_ backend: Backend) throws {
        let store = try backend.open().store
        let now = Date()
        let k1 = InboundKey("customer-a", "m1"), k2 = InboundKey("customer-a", "m2")
        #expect(try store.commit([Commit(inbound: k1, conversationId: "c1", expectedVersion: 0, outbox: [outbound("o1", conversation: "c1", inbound: k1)], at: now)])
                == [.committed(version: 1)])
        do {
            let outcome = try store.commit([Commit(inbound: k2, conversationId: "c1", expectedVersion: 1, outbox: [outbound("o1", conversation: "c1", inbound: k2)], at: now)])
            Issue.record("a colliding outbox id was answered \(outcome), not refused")
        } catch let e as StoreError {
            #expect(e.code == .refused, "\(e)")
        }
        #expect(try store.conversation(id: "c1")?.version == 1)
    }

    /// Several callers' commits at once (the store role's batch; SQLite writes them in one transaction): each
    /// caller's outcomes as its own `commit` would give them, its chain of its own, and a caller whose content
    /// is refused fails alone.
    static func groupsOfCallersAnswerEachOnItsOwn(_ backend: Backend) throws {
        let store = try backend.open().store
        let now = Date()
        let k = (1...5).map { InboundKey("customer-a", "m\($0)") }
        _ = try store.commit([Commit(inbound: k[0], conversationId: "c1", expectedVersion: 0, outbox: [outbound("o1", conversation: "c1", inbound: k[0])], at: now)])
        let results = store.commit(groups: [
            // A chain: the second commit was decided on top of the first.
            [Commit(inbound: k[1], conversationId: "c2", expectedVersion: 0, newReferences: [TicketRef("a", "T2")], at: now),
             Commit(inbound: k[2], conversationId: "c2", expectedVersion: 1, at: now)],
            // Refused: the outbox id exists already.
            [Commit(inbound: k[3], conversationId: "c1", expectedVersion: 1, outbox: [outbound("o1", conversation: "c1", inbound: k[3])], at: now)],
            // Stale: c1 is at version 1, not 0.
            [Commit(inbound: k[4], conversationId: "c1", expectedVersion: 0, at: now)],
        ])
        #expect(results.count == 3)
        #expect((try? results[0].get()) == [.committed(version: 1), .committed(version: 2)])
        if case .failure(let e as StoreError) = results[1] { #expect(e.code == .refused, "\(e)") } else { Issue.record("not refused: \(results[1])") }
        #expect((try? results[2].get()) == [.stale])
        #expect(try store.conversation(id: "c2")?.version == 2)
        #expect(try store.conversation(id: "c1")?.version == 1)
        #expect(try store.find([TicketRef("a", "T2")])?.id == "c2")
    }

    static func survivesReopening(_ backend: Backend) throws {
        let (store, reopen) = try backend.open()
        _ = try store.commit([Commit(inbound: InboundKey("a", "1"), conversationId: "c1", expectedVersion: 0,
                                     newReferences: [TicketRef("a", "T1")], at: Date())])
        #expect(try reopen().find([TicketRef("a", "T1")])?.id == "c1")
    }

    static func membership(_ backend: Backend) throws {
        let store = try backend.open().store
        #expect(try store.heartbeat(member: "w-b", ttl: 4) == ["w-b"])
        #expect(try store.heartbeat(member: "w-a", ttl: 4) == ["w-a", "w-b"])
        try store.leave(member: "w-b")
        #expect(try store.heartbeat(member: "w-a", ttl: 4) == ["w-a"])
        // Intakes are a group of their own in the same table: neither group sees the other.
        #expect(try store.heartbeat(member: "intake/i-1", ttl: 4) == ["intake/i-1"])
        #expect(try store.heartbeat(member: "intake/i-2", ttl: 4) == ["intake/i-1", "intake/i-2"])
        #expect(try store.heartbeat(member: "w-a", ttl: 4) == ["w-a"])
        try store.leave(member: "intake/i-1")
        #expect(try store.heartbeat(member: "intake/i-2", ttl: 4) == ["intake/i-2"])
    }

    /// Two store processes (two connections to one database), each with a writer that reads the
    /// conversation, decides, and commits against the version it read; on a stale answer it reads again.
    /// Every increment lands exactly once, and some commits were refused on the way.
    static func concurrentWritersOnOneConversation(_ backend: Backend) async throws {
        let (first, reopen) = try backend.open()
        let second = try reopen()
        _ = try first.commit([Commit(inbound: InboundKey("t", "0"), conversationId: "c1", expectedVersion: 0, counters: ["n": 0], at: Date())])
        let perWriter = 60
        async let a = onThread { try writer(first, name: "a", count: perWriter) }
        async let b = onThread { try writer(second, name: "b", count: perWriter) }
        let (staleA, staleB) = try await (a, b)
        let final = try #require(try first.conversation(id: "c1"))
        #expect(final.counters["n"] == 2 * perWriter)
        #expect(final.version == 2 * perWriter + 1)
        #expect(staleA + staleB > 0, "the two writers never collided; the test proves nothing")
    }

    /// Returns how many of its commits were refused as stale.
    private static func writer(_ store: ConversationStore, name: String, count: Int) throws -> Int {
        var stale = 0
        for i in 0..<count {
            while true {
                let s = try #require(try store.conversation(id: "c1"))
                let outcome = try store.commit([Commit(
                    inbound: InboundKey(name, String(i)), conversationId: "c1", expectedVersion: s.version,
                    counters: ["n": (s.counters["n"] ?? 0) + 1], at: Date())])
                if outcome == [.stale] { stale += 1; continue }
                #expect(outcome == [.committed(version: s.version + 1)])
                break
            }
        }
        return stale
    }
}

@Suite struct SQLiteContract {
    let b = Backend.sqlite
    @Test func createFindAndLink() async throws { try await onThread { [b] in try StoreContract.createFindAndLink(b) } }
    @Test func duplicateInbound() async throws { try await onThread { [b] in try StoreContract.duplicateInboundReturnsTheStoredOutbox(b) } }
    @Test func staleVersion() async throws { try await onThread { [b] in try StoreContract.staleVersionIsRefused(b) } }
    @Test func sameRequestTwice() async throws { try await onThread { [b] in try StoreContract.theSameRequestTwiceIsCommittedOnce(b) } }
    @Test func referenceConflict() async throws { try await onThread { [b] in try StoreContract.referenceOwnedByAnotherConversationIsStale(b) } }
    @Test func chainAfterStale() async throws { try await onThread { [b] in try StoreContract.aChainAfterAStaleCommitIsStale(b) } }
    @Test func failedOutbound() async throws { try await onThread { [b] in try StoreContract.failedOutboundIsCountedAndListed(b) } }
    @Test func reusedMessageId() async throws { try await onThread { [b] in try StoreContract.aReusedMessageIdIsAConflict(b) } }
    @Test func collidingOutboxId() async throws { try await onThread { [b] in try StoreContract.aCollidingOutboxIdIsRefusedNotStale(b) } }
    @Test func groupsOfCallers() async throws { try await onThread { [b] in try StoreContract.groupsOfCallersAnswerEachOnItsOwn(b) } }
    @Test func retention() async throws { try await onThread { [b] in try StoreContract.retentionPrunesByAge(b) } }
    @Test func reopening() async throws { try await onThread { [b] in try StoreContract.survivesReopening(b) } }
    @Test func membership() async throws { try await onThread { [b] in try StoreContract.membership(b) } }
    @Test func timelineWhole() async throws { try await onThread { [b] in try StoreContract.timelineEntriesComeBackWhole(b) } }
    @Test func concurrentWriters() async throws { try await StoreContract.concurrentWritersOnOneConversation(b) }
    @Test func changedSince() async throws { try await StoreContract.conversationsChangedSince(b) }
}

@Suite(.serialized) struct PostgresContract {
    /// TLS to the test server, its certificate checked against the CA `Deploy/local/postgres.sh ca` names.
    @Test func tlsWithAVerifiedCertificate() async throws {
        let env = ProcessInfo.processInfo.environment
        guard let base = env["SB_TEST_POSTGRES_URL"], let ca = env["SB_TEST_POSTGRES_CA"] else { throw Backend.NoServer() }
        let schema = "t" + UUID().uuidString.prefix(8).lowercased()
        try await onThread {
            let store = try PostgresStore.standalone(url: "\(base)?schema=\(schema)&sslmode=require&sslrootcert=\(ca)", logger: Logger(label: "t"))
            #expect(try store.commit([Commit(inbound: InboundKey("a", "1"), conversationId: "c1", expectedVersion: 0, at: Date())])
                    == [.committed(version: 1)])
        }
        // Any other CA: refused, and the error says why.
        let otherCA = FileManager.default.temporaryDirectory.appendingPathComponent("sb-other-ca-\(UUID().uuidString).pem").path
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        openssl.arguments = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=Other CA",
                             "-keyout", otherCA + ".key", "-out", otherCA]
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        #expect(openssl.terminationStatus == 0)
        let refused = await #expect(throws: StoreError.self) {
            try await onThread {
                _ = try PostgresStore.standalone(url: "\(base)?schema=\(schema)&sslmode=require&sslrootcert=\(otherCA)", timeout: 15, logger: Logger(label: "t"))
            }
        }
        #expect(refused.map { "\($0)".lowercased().contains("certificate") } == true, "\(String(describing: refused))")
    }

    let b = Backend.postgres
    @Test func createFindAndLink() async throws { try await onThread { [b] in try StoreContract.createFindAndLink(b) } }
    @Test func duplicateInbound() async throws { try await onThread { [b] in try StoreContract.duplicateInboundReturnsTheStoredOutbox(b) } }
    @Test func staleVersion() async throws { try await onThread { [b] in try StoreContract.staleVersionIsRefused(b) } }
    @Test func sameRequestTwice() async throws { try await onThread { [b] in try StoreContract.theSameRequestTwiceIsCommittedOnce(b) } }
    @Test func referenceConflict() async throws { try await onThread { [b] in try StoreContract.referenceOwnedByAnotherConversationIsStale(b) } }
    @Test func chainAfterStale() async throws { try await onThread { [b] in try StoreContract.aChainAfterAStaleCommitIsStale(b) } }
    @Test func failedOutbound() async throws { try await onThread { [b] in try StoreContract.failedOutboundIsCountedAndListed(b) } }
    @Test func reusedMessageId() async throws { try await onThread { [b] in try StoreContract.aReusedMessageIdIsAConflict(b) } }
    @Test func collidingOutboxId() async throws { try await onThread { [b] in try StoreContract.aCollidingOutboxIdIsRefusedNotStale(b) } }
    @Test func groupsOfCallers() async throws { try await onThread { [b] in try StoreContract.groupsOfCallersAnswerEachOnItsOwn(b) } }

    /// The grouped call itself (`sb_commit_groups`, one transaction for every caller): each caller's chain
    /// is its own, so a chain broken in one caller's commits leaves another caller's commit of the same
    /// conversation to be judged by its version alone.
    @Test func groupsInOneCall() async throws {
        try await onThread { [b] in
            let store = try #require(try b.open().store as? PostgresStore)
            let now = Date()
            let k = (1...6).map { InboundKey("customer-a", "g\($0)") }
            _ = try store.commit([Commit(inbound: k[0], conversationId: "c1", expectedVersion: 0, at: now)])
            let answers = try store.commitTogether([
                // Stale (c1 is at 1), and so the commit decided on top of it.
                [Commit(inbound: k[1], conversationId: "c1", expectedVersion: 0, at: now),
                 Commit(inbound: k[2], conversationId: "c1", expectedVersion: 1, at: now)],
                // Another caller's commit of c1 at its version: applied.
                [Commit(inbound: k[3], conversationId: "c1", expectedVersion: 1, counters: ["n": 7], at: now)],
                [Commit(inbound: k[4], conversationId: "c2", expectedVersion: 0, newReferences: [TicketRef("a", "G2")], at: now),
                 Commit(inbound: k[5], conversationId: "c2", expectedVersion: 1, at: now)],
            ])
            #expect(answers == [[.stale, .stale], [.committed(version: 2)], [.committed(version: 1), .committed(version: 2)]])
            #expect(try store.conversation(id: "c1")?.counters == ["n": 7])
            #expect(try store.find([TicketRef("a", "G2")])?.version == 2)
        }
    }
    @Test func retention() async throws { try await onThread { [b] in try StoreContract.retentionPrunesByAge(b) } }
    @Test func reopening() async throws { try await onThread { [b] in try StoreContract.survivesReopening(b) } }
    @Test func membership() async throws { try await onThread { [b] in try StoreContract.membership(b) } }
    @Test func timelineWhole() async throws { try await onThread { [b] in try StoreContract.timelineEntriesComeBackWhole(b) } }
    @Test func concurrentWriters() async throws { try await StoreContract.concurrentWritersOnOneConversation(b) }
    @Test func changedSince() async throws { try await StoreContract.conversationsChangedSince(b) }
}
