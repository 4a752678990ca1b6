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
        let committed = groupCommit(batch)
        return batch.indices.compactMap { i in
            let d = batch[i]
            let p = d.message.properties
            guard let replyTo = p.replyTo, !replyTo.isEmpty else {
                logger.warning("store request without reply_to ignored", metadata: ["sb.op": "\(p.type ?? "")"])
                return nil
            }
            // Answered in the form it was asked in.
            let wire = p.contentType == StoreWire.contentType
            let (type, body): (String, Data)
            do {
                let answered = try committed[i].map { try Self.reply($0.get(), wire: wire) } ?? answer(p.type ?? "", d.message.body, wire: wire)
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

    /// The batch's commit requests, from every worker that sent one, through the store at once (one
    /// transaction for all where the store can: SQLite's group commit); their answers by position in the
    /// batch, nil for the other requests (and for a commit request that cannot be read: `answer` says why).
    private func groupCommit(_ batch: [Delivery]) -> [Result<[CommitOutcome], any Error>?] {
        var answers: [Result<[CommitOutcome], any Error>?] = Array(repeating: nil, count: batch.count)
        var positions: [Int] = []
        var groups: [[Commit]] = []
        for (i, d) in batch.enumerated() where d.message.properties.type == StoreRPC.Op.commit.rawValue && d.message.properties.replyTo?.isEmpty == false {
            let wire = d.message.properties.contentType == StoreWire.contentType
            guard let commits = try? (wire ? StoreWire.decode(StoreRPC.Commits.self, d.message.body) : StoreRPC.decode(StoreRPC.Commits.self, d.message.body))
            else { continue }
            positions.append(i)
            groups.append(commits.commits)
        }
        guard !groups.isEmpty else { return answers }
        for (i, result) in zip(positions, store.commit(groups: groups)) { answers[i] = result }
        return answers
    }

    private static func reply<T: Codable & WireCodable>(_ value: T, wire: Bool) throws -> Data {
        let r = StoreRPC.Reply(value: value)
        return wire ? StoreWire.encode(r) : try StoreRPC.encode(r)
    }

    private func answer(_ op: String, _ body: Data, wire: Bool) throws -> Data {
        guard let op = StoreRPC.Op(rawValue: op) else { throw StoreError("unknown store operation '\(op)'") }
        func arg<T: Codable & WireCodable>(_ type: T.Type) throws -> T {
            wire ? try StoreWire.decode(type, body) : try StoreRPC.decode(type, body)
        }
        func reply<T: Codable & WireCodable>(_ value: T) throws -> Data { try Self.reply(value, wire: wire) }
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
