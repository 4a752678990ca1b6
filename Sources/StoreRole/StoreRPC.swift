import AMQP
import Foundation
import Logging
import Roles
import Rules
import Store

/// The store role's protocol over the broker. A request is a message to queue `sb.store` whose `type`
/// names the operation and whose body is its JSON-encoded argument; it carries `reply_to` (RabbitMQ's
/// direct reply-to), a `correlation_id` and an `expiration` equal to the caller's timeout, so a request
/// nobody took in time disappears instead of being served late. The answer has `type` `ok` (body: the
/// result) or `error` (body: the store's error message).
///
/// Nothing here needs to be exactly-once: reads are reads, and a commit that was applied but whose answer
/// was lost is answered `duplicate` when the worker's redelivered batch commits again.
package enum StoreRPC {
    package enum Op: String, Sendable {
        case find, findBatch, conversations, outbounds, commit, heartbeat, leave
    }

    // Requests and replies; on the wire (`StoreWire`) each is its content alone. The JSON form (keys as
    // named here, a reply wrapped in `value`) is what releases before the binary one sent: the store still
    // answers it, in kind, so a store can be upgraded before its workers.
    struct Refs: Codable, WireCodable {
        var refs: [TicketRef]
        init(refs: [TicketRef]) { self.refs = refs }
        func write(to w: inout WireWriter) { refs.write(to: &w) }
        init(from r: inout WireReader) throws { refs = try [TicketRef](from: &r) }
    }
    struct Batch: Codable, WireCodable {
        var batch: [[TicketRef]]
        init(batch: [[TicketRef]]) { self.batch = batch }
        func write(to w: inout WireWriter) { batch.write(to: &w) }
        init(from r: inout WireReader) throws { batch = try [[TicketRef]](from: &r) }
    }
    struct Id: Codable, WireCodable {
        var id: String
        init(id: String) { self.id = id }
        func write(to w: inout WireWriter) { w.string(id) }
        init(from r: inout WireReader) throws { id = try r.string() }
    }
    struct Ids: Codable, WireCodable {
        var ids: [String]
        init(ids: [String]) { self.ids = ids }
        func write(to w: inout WireWriter) { ids.write(to: &w) }
        init(from r: inout WireReader) throws { ids = try [String](from: &r) }
    }
    struct Commits: Codable, WireCodable {
        var commits: [Commit]
        init(commits: [Commit]) { self.commits = commits }
        static var wireVersion: UInt8 { Commit.wireVersion }
        func write(to w: inout WireWriter) { commits.write(to: &w) }
        init(from r: inout WireReader) throws { commits = try [Commit](from: &r) }
    }
    struct Member: Codable, WireCodable {
        var member: String
        var ttl: Double
        init(member: String, ttl: Double) { (self.member, self.ttl) = (member, ttl) }
        func write(to w: inout WireWriter) {
            w.string(member)
            w.double(ttl)
        }
        init(from r: inout WireReader) throws { (member, ttl) = (try r.string(), try r.double()) }
    }
    struct Nothing: Codable, WireCodable {
        init() {}
        func write(to w: inout WireWriter) {}
        init(from r: inout WireReader) throws {}
    }
    /// Results are wrapped so an optional result is still a JSON object at the top.
    struct Reply<T: Codable & WireCodable>: Codable, WireCodable {
        var value: T
        init(value: T) { self.value = value }
        func write(to w: inout WireWriter) { value.write(to: &w) }
        init(from r: inout WireReader) throws { value = try T(from: &r) }
    }

    static func encode(_ value: some Encodable) throws -> Data {
        try JSONEncoder().encode(value)
    }

    static func decode<T: Decodable>(_ type: T.Type, _ data: Data) throws -> T {
        try JSONDecoder().decode(type, from: data)
    }
}

/// The store role: serves `sb.store` requests from a store it owns (SQLite or PostgreSQL). With SQLite it
/// consumes exclusively, so a second store process waits as a hot standby instead of opening a second
/// database; with PostgreSQL any number of store processes share the queue.
package final class StoreServer: BatchHandler {
    private let store: FleetStore
    private let logger: Logger
    package let exclusive: Bool

    private let queue: String
    /// The largest answer (settings.store_max_request_bytes, like requests): a larger one would be refused
    /// by the broker (max_message_size) and the caller would wait for it in vain.
    private let maxReplyBytes: Int

    /// Serves the requests of `queue`: `sb.store`, or `sb.store.members` (heartbeats, on a loop of their own).
    package init(store: FleetStore, exclusive: Bool, logger: Logger, queue: String = Contract.storeQueue, maxReplyBytes: Int = 16 << 20) {
        self.store = store
        self.exclusive = exclusive
        self.logger = logger
        self.queue = queue
        self.maxReplyBytes = maxReplyBytes
    }

    /// What a caller reads when an answer is over the limit: it asks for less at once (`RemoteStore`).
    package static let tooLargePrefix = "the answer is too large: "

    package var queues: [(queue: String, tag: String)] {
        [(queue, "\(queue):\(ProcessInfo.processInfo.processIdentifier)")]
    }

    package func handle(_ batch: [Delivery]) throws -> [Outgoing] {
        batch.compactMap { d in
            let p = d.message.properties
            guard let replyTo = p.replyTo, !replyTo.isEmpty else {
                logger.warning("store request without reply_to ignored", metadata: ["sb.op": "\(p.type ?? "")"])
                return nil
            }
            // Answered in the form it was asked in.
            let wire = p.contentType == StoreWire.contentType
            let (type, body): (String, Data)
            do {
                let answered = try answer(p.type ?? "", d.message.body, wire: wire)
                guard answered.count <= maxReplyBytes else {
                    throw StoreError(
                        Self.tooLargePrefix + "\(answered.count) bytes answering '\(p.type ?? "")', over the limit of \(maxReplyBytes) "
                            + "(settings.store_max_request_bytes)", code: .refused)
                }
                (type, body) = ("ok", answered)
            } catch {
                let failure = (error as? StoreError) ?? StoreError("\(error)")
                logger.error("store request failed", metadata: ["sb.op": "\(p.type ?? "")", "sb.error": "\(failure.message)"])
                (type, body) = ("error", wire ? StoreWire.encode(failure) : (try? StoreRPC.encode(failure)) ?? Data())
            }
            return Outgoing(
                exchange: "", routingKey: replyTo,
                message: Message(body: body, properties: Properties(
                    contentType: wire ? StoreWire.contentType : nil, correlationId: p.correlationId, type: type, persistent: false)),
                mandatory: false)
        }
    }

    private func answer(_ op: String, _ body: Data, wire: Bool) throws -> Data {
        guard let op = StoreRPC.Op(rawValue: op) else { throw StoreError("unknown store operation '\(op)'") }
        func arg<T: Codable & WireCodable>(_ type: T.Type) throws -> T {
            wire ? try StoreWire.decode(type, body) : try StoreRPC.decode(type, body)
        }
        func reply<T: Codable & WireCodable>(_ value: T) throws -> Data {
            let r = StoreRPC.Reply(value: value)
            return wire ? StoreWire.encode(r) : try StoreRPC.encode(r)
        }
        switch op {
        case .find: return try reply(store.find(arg(StoreRPC.Refs.self).refs))
        case .findBatch: return try reply(store.find(batch: arg(StoreRPC.Batch.self).batch))
        case .conversations: return try reply(store.conversations(ids: arg(StoreRPC.Ids.self).ids))
        case .outbounds: return try reply(store.outbound(messageIds: arg(StoreRPC.Ids.self).ids))
        case .commit: return try reply(store.commit(arg(StoreRPC.Commits.self).commits))
        case .heartbeat:
            let m = try arg(StoreRPC.Member.self)
            return try reply(store.heartbeat(member: m.member, ttl: m.ttl))
        case .leave:
            try store.leave(member: arg(StoreRPC.Id.self).id)
            return try reply(StoreRPC.Nothing())
        }
    }
}

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

extension StoreServer {
    /// The store role's services: one loop answers `sb.store` requests from workers in other processes,
    /// another `sb.store.members` (heartbeats and leaves), so membership never waits behind commits.
    package static func services(
        config: SwitchboardConfig, store: FleetStore, parked: (any ParkedStore)?, options: ConnectionOptions, logger: Logger
    ) -> [RoleService] {
        // One SQLite file has one owner: a second store process waits (exclusive consumer) as a standby.
        let exclusive = !(config.settings.storeURL.hasPrefix("postgres"))
        var services = [("store", Contract.storeQueue), ("store-members", Contract.storeMembersQueue)].map { name, queue in
            RoleService(name: name) { flag in
                ConsumerLoop(
                    name: name, config: config, options: options,
                    handler: StoreServer(
                        store: store, exclusive: exclusive, logger: logger, queue: queue, maxReplyBytes: config.settings.storeMaxRequestBytes),
                    stopFlag: flag, logger: logger
                ).run()
            }
        }
        // What arrives in sb.parked moves into the store's parked table (see ParkedIntakeHandler).
        if let parked {
            services.append(RoleService(name: "parked") { flag in
                ConsumerLoop(
                    name: "parked", config: config, options: options,
                    handler: ParkedIntakeHandler(store: parked, config: config, switchboardUser: options.user, exclusive: exclusive, logger: logger),
                    // Parked messages may be as large as the broker allows, and they are few: a small window.
                    stopFlag: flag, logger: logger, prefetch: 8
                ).run()
            })
        }
        return services
    }
}
