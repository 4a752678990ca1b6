import AMQP
import Foundation
import Logging
import Roles
import Rules
import Store

/// The store as a stateless worker sees it: every call is a request to the store role over the broker.
/// Safe to call from any thread: each call borrows one of a few connections (one per concurrent caller).
package final class RemoteStore: FleetStore, @unchecked Sendable {
    private let options: ConnectionOptions
    private let timeout: TimeInterval
    private let logger: Logger
    private let lock = NSLock()
    private var idle: [Channel] = []
    private var nextId: UInt64 = 0

    /// One connection and its reply consumer; used by one caller at a time.
    private final class Channel {
        let connection: Connection
        /// When it was last given back: an idle connection services no AMQP heartbeats.
        var idleSince = Date()
        init(_ connection: Connection) { self.connection = connection }
    }

    /// A pooled connection idle for one heartbeat interval (the one agreed with the broker) is closed
    /// rather than used: nothing services its heartbeats in the pool, and after two missed intervals the
    /// broker has closed it (a quiet worker's next batch would fail on it and go back to its queue for nothing).
    private static func expired(_ channel: Channel, now: Date) -> Bool {
        let interval = channel.connection.heartbeatSeconds
        return interval > 0 && now.timeIntervalSince(channel.idleSince) >= TimeInterval(interval)
    }

    /// The largest store request; RabbitMQ refuses messages over its `max_message_size` (128 MiB).
    private let maxRequestBytes: Int

    private let queueType: String

    package init(
        options: ConnectionOptions, timeout: TimeInterval, maxRequestBytes: Int = 16 << 20, queueType: String = "classic", logger: Logger
    ) {
        self.maxRequestBytes = maxRequestBytes
        self.queueType = queueType
        var options = options
        options.connectionName = "switchboard store client pid \(ProcessInfo.processInfo.processIdentifier)"
        // A broker call on a store connection (its declares, the no-answer diagnosis) waits no longer than a
        // store call may: a connection the broker stopped answering on costs a caller seconds, not minutes.
        options.rpcTimeout = min(options.rpcTimeout, max(timeout, 1))
        self.options = options
        self.timeout = timeout
        self.logger = logger
    }

    package func find(_ refs: [TicketRef]) throws -> ConversationSnapshot? {
        try call(.find, StoreRPC.Refs(refs: refs))
    }

    package func find(batch: [[TicketRef]]) throws -> [ConversationSnapshot?] {
        try halving(batch) { try call(.findBatch, StoreRPC.Batch(batch: $0)) }
    }

    /// A read of many whose answer the store found too large is asked again in halves (one alone that is
    /// still too large is refused: its message is parked, or the batch held, by the caller).
    private func halving<T, R>(_ items: [T], _ ask: ([T]) throws -> [R]) throws -> [R] {
        do {
            return try ask(items)
        } catch let e as StoreError where e.code == .refused && e.message.hasPrefix(StoreServer.tooLargePrefix) && items.count > 1 {
            let half = items.count / 2
            return try halving(Array(items[..<half]), ask) + halving(Array(items[half...]), ask)
        }
    }

    package func outbound(messageIds: [String]) throws -> [StoredOutbound?] {
        try halving(messageIds) { try call(.outbounds, StoreRPC.Ids(ids: $0)) }
    }

    package func conversations(ids: [String]) throws -> [ConversationSnapshot?] {
        try halving(ids) { try call(.conversations, StoreRPC.Ids(ids: $0)) }
    }

    /// One request when it fits in `maxRequestBytes`; otherwise requests of as many commits as fit, in
    /// order. The chain rule of one commit call (a conversation's commits after one that is not applied
    /// are stale) is kept across them here: such commits are answered stale without being sent. A single
    /// commit larger than a request may be is refused (its message is parked).
    package func commit(_ commits: [Commit]) throws -> [CommitOutcome] {
        let whole = StoreWire.encode(StoreRPC.Commits(commits: commits))
        if whole.count <= maxRequestBytes { return try call(.commit, encoded: whole) }
        var outcomes: [CommitOutcome] = []
        var broken: Set<String> = []
        var chunk: [Commit] = []
        var size = 0
        func send() throws {
            guard !chunk.isEmpty else { return }
            let answered: [CommitOutcome] = try call(.commit, StoreRPC.Commits(commits: chunk))
            for (c, o) in zip(chunk, answered) {
                if case .committed = o {} else { broken.insert(c.conversationId) }
            }
            outcomes += answered
            chunk = []
            size = 0
        }
        for c in commits {
            let bytes = StoreWire.encode(c).count
            guard bytes <= maxRequestBytes else {
                throw StoreError(
                    "a commit of \(bytes) bytes is larger than a store request may be (\(maxRequestBytes) bytes, settings.store_max_request_bytes)",
                    code: .refused)
            }
            if size + bytes > maxRequestBytes { try send() }
            if broken.contains(c.conversationId) {
                try send()
                outcomes.append(.stale)
                continue
            }
            chunk.append(c)
            size += bytes
        }
        try send()
        return outcomes
    }

    /// Through `sb.store.members`: never behind the commits waiting in `sb.store`.
    package func heartbeat(member: String, ttl: TimeInterval) throws -> [String] {
        try call(.heartbeat, StoreRPC.Member(member: member, ttl: ttl), queue: Contract.storeMembersQueue)
    }

    package func leave(member: String) throws {
        let _: StoreRPC.Nothing = try call(.leave, StoreRPC.Id(id: member), queue: Contract.storeMembersQueue)
    }

    private func borrow() throws -> (Channel, String) {
        lock.lock()
        nextId += 1
        let id = String(nextId)
        let now = Date()
        let stale = idle.filter { Self.expired($0, now: now) }
        if !stale.isEmpty { idle.removeAll { Self.expired($0, now: now) } }
        let channel = idle.popLast()
        lock.unlock()
        for c in stale { c.connection.close() }
        if let channel { return (channel, id) }
        let c = try Connection(options, logger: logger)
        try Topology.declareStoreQueue(on: c, queueType: queueType)
        try c.consumeDirectReplies()
        return (Channel(c), id)
    }

    private func giveBack(_ channel: Channel) {
        // A connection that failed meanwhile (e.g. in the no-answer diagnosis) is not kept.
        guard channel.connection.isOpen else {
            channel.connection.close()
            return
        }
        channel.idleSince = Date()
        lock.lock()
        idle.append(channel)
        lock.unlock()
    }

    private func call<R: WireCodable>(_ op: StoreRPC.Op, _ request: some WireCodable, queue: String = Contract.storeQueue) throws -> R {
        try call(op, encoded: StoreWire.encode(request), queue: queue)
    }

    private func call<R: WireCodable>(_ op: StoreRPC.Op, encoded body: Data, queue: String = Contract.storeQueue) throws -> R {
        let channel: Channel
        let id: String
        do {
            (channel, id) = try borrow()
        } catch {
            throw StoreError("cannot reach the broker to call the store (\(op.rawValue)): \(error)")
        }
        let c = channel.connection
        let answer: Message
        do {
            let props = Properties(
                contentType: StoreWire.contentType, correlationId: id, type: op.rawValue, replyTo: Connection.directReplyTo,
                expiration: String(Int(timeout * 1000)), persistent: false)
            try c.publish(
                exchange: "", routingKey: queue, message: Message(body: body, properties: props),
                mandatory: false)
            answer = try wait(for: id, on: c, op: op, queue: queue)
        } catch let e as StoreError {
            // No answer in time: a late one may still come on it, or the broker stopped serving it; a
            // fresh connection for the next call costs milliseconds.
            c.close()
            throw e
        } catch {
            // The connection is broken: drop it; the next call makes a new one.
            c.close()
            throw StoreError("store call '\(op.rawValue)' failed: \(error)")
        }
        giveBack(channel)
        if answer.properties.type == "error" {
            throw (try? StoreWire.decode(StoreError.self, answer.body)) ?? StoreError("the store failed '\(op.rawValue)'")
        }
        do {
            return try StoreWire.decode(R.self, answer.body)
        } catch {
            throw StoreError("unreadable answer from the store to '\(op.rawValue)': \(error)")
        }
    }

    private func wait(for id: String, on c: Connection, op: StoreRPC.Op, queue: String) throws -> Message {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let remaining = deadline.timeIntervalSinceNow
            guard remaining > 0, let d = try c.nextDelivery(timeout: remaining) else {
                let consumers = (try? c.queueDepth(queue))?.consumers
                throw StoreError(
                    "no store answered '\(op.rawValue)' within \(timeout) s"
                        + (consumers == 0
                            ? ": queue '\(queue)' has no consumer; start `switchboard store` (or `switchboard run`)"
                            : " (queue '\(queue)' has \(consumers.map(String.init) ?? "?") consumer(s))"))
            }
            // A late answer to an earlier call that timed out is not ours.
            if d.message.properties.correlationId == id { return d.message }
        }
    }
}
