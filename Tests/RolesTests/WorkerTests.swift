import AMQP
import Foundation
import JSONPath
import Logging
import StoreRole
import Synchronization
import Testing

@testable import Rules
@testable import Store
@testable import Roles

let countingConfig = """
    endpoints:
      customer-a:
        ticket_id: $.number
    rules:
      - name: count
        from: customer-a
        counters: [{counter: n, increment: 1}]
        send:
          - to: customer-a
            type: comment
            body: {seen: "${counter:n}"}
    """

func config() throws -> SwitchboardConfig {
    try ConfigLoader.load(files: [("test.yaml", countingConfig)], environment: [:])
}

func temporaryStore() throws -> SQLiteStore {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sb-worker-\(UUID().uuidString)")
    return try SQLiteStore(path: dir.appendingPathComponent("s.sqlite").path)
}

func delivery(_ id: String, ticket: String = "INC1", redelivered: Bool = false, tag: UInt64 = 1) -> Delivery {
    let props = Properties(
        messageId: id, headers: [Contract.Header.endpoint: .string("customer-a"), Contract.Header.kind: .string("ticket")])
    return Delivery(
        deliveryTag: tag, redelivered: redelivered, exchange: Contract.workExchange, routingKey: "0", consumerTag: "t",
        message: Message(body: Data(#"{"number":"\#(ticket)"}"#.utf8), properties: props), generation: 1)
}

/// A store that forwards every call to another; the wrappers below change what a commit does.
class ForwardingStore: ConversationStore, @unchecked Sendable {
    let inner: ConversationStore

    init(_ inner: ConversationStore) { self.inner = inner }

    func find(_ refs: [TicketRef]) throws -> ConversationSnapshot? { try inner.find(refs) }
    func conversation(id: String) throws -> ConversationSnapshot? { try inner.conversation(id: id) }
    func outbound(messageId: String) throws -> StoredOutbound? { try inner.outbound(messageId: messageId) }
    func timeline(conversationId: String) throws -> [TimelineEntry] { try inner.timeline(conversationId: conversationId) }
    func references(conversationId: String) throws -> [String: String] { try inner.references(conversationId: conversationId) }
    func heartbeat(member: String, ttl: TimeInterval) throws -> [String] { try inner.heartbeat(member: member, ttl: ttl) }
    func leave(member: String) throws { try inner.leave(member: member) }
    func failedOutbound(limit: Int) throws -> (count: Int, newest: [FailedOutbound]) { try inner.failedOutbound(limit: limit) }
    func prune(now: Date, retention: Settings.Retention, limit: Int) throws -> Pruned {
        try inner.prune(now: now, retention: retention, limit: limit)
    }
    func commit(_ commits: [Commit]) throws -> [CommitOutcome] { try inner.commit(commits) }
}

/// A store that lets another writer commit just before our first commit: the decision we made is stale.
final class InterferingStore: ForwardingStore, @unchecked Sendable {
    var beforeFirstCommit: (() throws -> Void)?
    private(set) var outcomes: [CommitOutcome] = []
    /// Store transactions asked for (commit calls), from any thread.
    let commits = Mutex(0)

    override func commit(_ commits: [Commit]) throws -> [CommitOutcome] {
        self.commits.withLock { $0 += 1 }
        if let hook = beforeFirstCommit {
            beforeFirstCommit = nil
            try hook()
        }
        let result = try inner.commit(commits)
        self.commits.withLock { _ in outcomes += result }
        return result
    }
}

/// A store that refuses every commit of more than one message (as if one of them held a value it cannot
/// store), so the worker goes one at a time; `beforeFirstSingle` runs before the first single commit.
final class BatchRefusingStore: ForwardingStore, @unchecked Sendable {
    var beforeFirstSingle: (() throws -> Void)?
    private(set) var outcomes: [CommitOutcome] = []

    override func commit(_ commits: [Commit]) throws -> [CommitOutcome] {
        if commits.count > 1 { throw StoreError("a value the store cannot hold", code: .refused) }
        if let hook = beforeFirstSingle {
            beforeFirstSingle = nil
            try hook()
        }
        let result = try inner.commit(commits)
        outcomes += result
        return result
    }
}

/// A store whose answer for one ticket's conversation would be larger than a store answer may be.
final class ReadRefusingStore: ForwardingStore, @unchecked Sendable {
    override func find(_ refs: [TicketRef]) throws -> ConversationSnapshot? {
        if refs.contains(where: { $0.ticketId == "BIG" }) {
            throw StoreError(StoreServer.tooLargePrefix + "20000000 bytes answering 'findBatch'", code: .refused)
        }
        return try inner.find(refs)
    }
}

@Suite struct WorkerTests {
    /// The refusal path keeps the chain: m1 goes stale (another writer committed m2 meanwhile), so m3,
    /// decided on top of m1, must not pass against the other writer's version; both are decided again,
    /// in order.
    @Test func aStaleCommitInTheRefusalPathMakesTheRestOfItsChainStale() throws {
        let cfg = try config()
        let store = try temporaryStore()
        let other = WorkerHandler(config: cfg, store: store, partitions: [0], logger: logger)
        _ = try other.handle([delivery("m0")])
        let refusing = BatchRefusingStore(store)
        let mine = WorkerHandler(config: cfg, store: refusing, partitions: [0], logger: logger)
        refusing.beforeFirstSingle = { _ = try other.handle([delivery("m2")]) }
        let out = try mine.handle([delivery("m1", tag: 1), delivery("m3", tag: 2)])
        #expect(refusing.outcomes.first == .stale)
        #expect(try out.map { try JSON.parse($0.message.body) } == [["seen": "3"], ["seen": "4"]])
        let conversation = try #require(try store.find([TicketRef("customer-a", "INC1")]))
        #expect(conversation.shownCounters == ["n": 4] && conversation.version == 4)
        let received = try store.timeline(conversationId: conversation.id).filter { $0.kind == .received }.map(\.messageId)
        #expect(received == ["m0", "m2", "m1", "m3"])
    }

    let logger = Logger(label: "test")

    @Test func aStaleCommitIsRefusedAndTheMessageReEvaluated() throws {
        let cfg = try config()
        let store = try temporaryStore()
        let other = WorkerHandler(config: cfg, store: store, partitions: [0], logger: logger)
        _ = try other.handle([delivery("m0")])

        let interfering = InterferingStore(store)
        let mine = WorkerHandler(config: cfg, store: interfering, partitions: [0], logger: logger)
        // While `mine` has decided m1 against version 1, the other writer commits m2.
        interfering.beforeFirstCommit = { _ = try other.handle([delivery("m2")]) }
        let out = try mine.handle([delivery("m1")])

        #expect(interfering.outcomes == [.stale, .committed(version: 3)])
        // Re-evaluated against the other writer's state: the counter is 3, not 2 twice.
        #expect(out.count == 1)
        #expect(try JSON.parse(out[0].message.body) == ["seen": "3"])
        let conversation = try #require(try store.find([TicketRef("customer-a", "INC1")]))
        #expect(conversation.shownCounters == ["n": 3])
        #expect(conversation.version == 3)
        #expect(try store.timeline(conversationId: conversation.id).filter { $0.kind == .received }.count == 3)
    }

    /// Past the dedupe window the store has forgotten a message id while its outbox rows (kept for bodies'
    /// retention) remain: the message applied again is a fresh effect with fresh ids, not a collision that
    /// parks it or stops the partition. On SQLite here, on PostgreSQL in `WorkerPostgresContract`.
    @Test func aMessageAppliedAgainPastTheDedupeWindowIsAFreshEffect() throws {
        try Self.appliedAgainPastTheDedupeWindow(try temporaryStore())
    }

    static func appliedAgainPastTheDedupeWindow(_ store: ConversationStore) throws {
        let cfg = try config()
        let worker = WorkerHandler(config: cfg, store: store, partitions: [0], logger: Logger(label: "test"))
        let first = try worker.handle([delivery("m1")])
        var retention = Settings.Retention()
        retention.dedupeDays = 7
        retention.bodiesDays = 30
        // The injected clock: pruning as if 8 days had passed.
        let pruned = try store.prune(now: Date().addingTimeInterval(8 * 86_400), retention: retention, limit: 10_000)
        #expect(pruned.processed == 1 && pruned.bodies == 0)
        let again = try worker.handle([delivery("m1")])
        #expect(again.map(\.routingKey) == ["customer-a"])
        #expect(try again.map { try JSON.parse($0.message.body) } == [["seen": "2"]])
        #expect(again[0].message.properties.messageId != first[0].message.properties.messageId)
        #expect(try store.find([TicketRef("customer-a", "INC1")])?.shownCounters == ["n": 2])
    }

    /// An ack marks the outbound message it answers: retention keeps an outbound message no ack has
    /// answered yet past the bodies' days (an ack may still come), and prunes the answered one.
    @Test func anAckedOutboundMessageIsPrunedAndAnUnansweredOneKept() throws {
        let cfg = try config()
        let store = try temporaryStore()
        let worker = WorkerHandler(config: cfg, store: store, partitions: [0], logger: logger)
        let sent = try worker.handle([delivery("m1")]) + worker.handle([delivery("m2", ticket: "INC2")])
        let ids = sent.compactMap(\.message.properties.messageId)
        #expect(ids.count == 2)
        var ack = delivery("ack-1")
        ack.message.properties.headers[Contract.Header.kind] = .string("ack")
        ack.message.properties.correlationId = ids[0]
        ack.message.body = Data(#"{"status":"ok"}"#.utf8)
        _ = try worker.handle([ack])
        var retention = Settings.Retention()
        retention.bodiesDays = 30
        retention.conversationsDays = 365
        let pruned = try store.prune(now: Date().addingTimeInterval(31 * 86_400), retention: retention, limit: 100)
        #expect(pruned.bodies == 1)
        #expect(try store.outbound(messageIds: ids).map { $0 != nil } == [false, true])
    }

    /// A message whose conversation the store refuses to read (too large an answer) is parked with the
    /// store's reason; the rest of its batch is applied, and nothing holds the batch.
    @Test func aMessageWhoseReadTheStoreRefusesIsParkedAndTheRestApplied() throws {
        let cfg = try config()
        let store = ReadRefusingStore(try temporaryStore())
        let worker = WorkerHandler(config: cfg, store: store, partitions: [0], logger: logger)
        let out = try worker.handle([delivery("m1", tag: 1), delivery("m2", ticket: "BIG", tag: 2), delivery("m3", ticket: "INC3", tag: 3)])
        #expect(out.filter { $0.routingKey == "customer-a" }.count == 2)
        let parked = out.filter { $0.routingKey == Contract.parkedQueue }
        #expect(parked.count == 1)
        #expect(parked.first?.message.properties.messageId == "m2")
        #expect(parked.first?.message.properties.headers[Contract.Header.reason]?.description.contains("the answer is too large") == true)
        #expect(try store.find([TicketRef("customer-a", "INC3")])?.shownCounters == ["n": 1])
    }

    @Test func redeliveryAfterCommitRepublishesTheSameMessageIds() throws {
        let cfg = try config()
        let store = try temporaryStore()
        let worker = WorkerHandler(config: cfg, store: store, partitions: [0], logger: logger)
        let first = try worker.handle([delivery("m1")])
        // The process died after the commit, before the ack: the broker redelivers.
        let again = try worker.handle([delivery("m1", redelivered: true)])
        #expect(again.map(\.message.properties.messageId) == first.map(\.message.properties.messageId))
        #expect(again.map(\.message.body) == first.map(\.message.body))
        #expect(try store.find([TicketRef("customer-a", "INC1")])?.shownCounters == ["n": 1])
        // An ESB's fresh resend of the same message id sends nothing and changes nothing.
        #expect(try worker.handle([delivery("m1")]).isEmpty)
        #expect(try store.find([TicketRef("customer-a", "INC1")])?.shownCounters == ["n": 1])
    }

    @Test func twoCopiesInOneBatchApplyOnceAndAReusedIdIsParked() throws {
        let cfg = try config()
        let store = try temporaryStore()
        let worker = WorkerHandler(config: cfg, store: store, partitions: [0], logger: logger)
        var other = delivery("m1", tag: 3)
        other.message.body = Data(#"{"number":"INC1","note":"something else"}"#.utf8)
        let out = try worker.handle([delivery("m1", tag: 1), delivery("m1", tag: 2), other])
        #expect(out.filter { $0.routingKey == "customer-a" }.count == 1)
        let parked = out.filter { $0.routingKey == Contract.parkedQueue }
        #expect(parked.count == 1)
        #expect(parked.first?.message.properties.headers[Contract.Header.reason]?.description.contains("already used by an earlier message of the same batch") == true)
        #expect(try store.find([TicketRef("customer-a", "INC1")])?.shownCounters == ["n": 1])
        // Later, on its own: the store knows the first one's digest.
        let later = try worker.handle([other])
        #expect(later.map(\.routingKey) == [Contract.parkedQueue])
        #expect(later.first?.message.properties.headers[Contract.Header.reason]?.description.contains("already used by a message applied to conversation") == true)
    }

    @Test func messagesOfOneTicketInOneBatchBuildOnEachOther() throws {
        let cfg = try config()
        let store = try temporaryStore()
        let worker = WorkerHandler(config: cfg, store: store, partitions: [0], logger: logger)
        let out = try worker.handle((1...5).map { delivery("b\($0)", tag: UInt64($0)) })
        #expect(try out.map { try JSON.parse($0.message.body) } == (1...5).map { ["seen": .string(String($0))] })
        #expect(try store.find([TicketRef("customer-a", "INC1")])?.version == 5)
    }
}

/// The worker against a real PostgreSQL (`make test` starts one; `make test-unit` skips this suite).
@Suite struct WorkerPostgresContract {
    @Test func aMessageAppliedAgainPastTheDedupeWindowIsAFreshEffect() async throws {
        guard let base = ProcessInfo.processInfo.environment["SB_TEST_POSTGRES_URL"], !base.isEmpty else {
            Issue.record("SB_TEST_POSTGRES_URL is not set: `make test` starts a PostgreSQL and sets it")
            return
        }
        let url = base + (base.contains("?") ? "&" : "?") + "schema=w\(UUID().uuidString.prefix(12).lowercased().replacingOccurrences(of: "-", with: ""))"
        // PostgresStore's synchronous bridge is for threads of its own, never the cooperative pool.
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
            Thread {
                done.resume(with: Result {
                    try WorkerTests.appliedAgainPastTheDedupeWindow(try PostgresStore.standalone(url: url, logger: Logger(label: "test")))
                })
            }.start()
        }
    }
}
