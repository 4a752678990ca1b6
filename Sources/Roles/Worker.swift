import AMQP
import Foundation
import JSONPath
import Logging
import Rules
import Store
import Telemetry

// One file (about 500 lines), on purpose: a batch's steps (prepare, preload, decide, commit isolating
// refusals, publish) share the private `Item`, `Overlay` and `Preloaded` types and the handler's state;
// split into extensions in other files they would all become visible to the whole module.

/// The worker role: for each message of its partitions, find the conversation, evaluate the rules,
/// commit the effects with the outbound messages (outbox) in one store transaction per batch, then
/// publish. A redelivered message whose commit already happened re-publishes the stored outbox, with
/// the same message ids, instead of being evaluated again.
package final class WorkerHandler: BatchHandler {
    private let config: SwitchboardConfig
    private let engine: Engine
    private let store: FleetStore
    private let partitions: [Int]
    private let logger: Logger
    private let clock: @Sendable () -> Date
    private let local: LocalPartitions?
    /// Attempts at a batch whose commits keep going stale. Another writer of the same conversation (its
    /// other ticket's partition) committing between our read and our commit makes ours stale; one of the
    /// two always wins, so the fleet makes progress, and a short random pause keeps one from always losing.
    private static let maxAttempts = 60

    package init(
        config: SwitchboardConfig, store: FleetStore, partitions: [Int], logger: Logger,
        local: LocalPartitions? = nil, clock: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.config = config
        self.local = local
        self.engine = Engine(config: config)
        self.store = store
        self.partitions = partitions
        self.logger = logger
        self.clock = clock
    }

    /// Timers come back as messages of this pseudo-endpoint; they carry no ticket id of their own.
    private static let timerEndpoint = EndpointConfig(
        name: Contract.timerEndpoint, ticketId: try! JSONPath("$.conversation"),
        location: SourceLocation(file: "(built in)", line: 0))

    package var exclusive: Bool { true }

    package var queues: [(queue: String, tag: String)] {
        // The pid in the tag shows in `rabbitmqctl list_consumers` which process holds a partition.
        partitions.map { (Contract.workQueue($0), "sb-worker:\($0):\(ProcessInfo.processInfo.processIdentifier)") }
    }

    /// One inbound message on its way through the batch.
    private struct Item {
        var delivery: Delivery
        var endpoint: String
        var messageId: String
        /// The partition route of the ticket this message belongs to; what it causes inherits it.
        var route: UInt64 = 0
        var event: InboundEvent?
        var commit: Commit?
        var outcome: CommitOutcome?
        var park: Park?
        /// The rules that matched in the decision being committed.
        var matched: [String] = []
        /// A barrier from this process's fused intake: nothing to evaluate (see `confirmed`).
        var barrier = false
        /// What the message says (type, correlation id, body): tells a resend from another message with the same id.
        var digest = ""
        /// A second copy of an earlier message of this batch: the first one applies it, this one does nothing.
        var copy = false

        /// When intake received it (its header), for the timeline and the latency metric.
        var receivedAt: Date? {
            guard case .int(let ms)? = delivery.message.properties.headers[Contract.Header.receivedAt] else { return nil }
            return Date(timeIntervalSince1970: Double(ms) / 1000)
        }

        /// Delivered before, here or (per intake's header) from `sb.in`: it may have been applied already.
        var redelivered: Bool {
            delivery.redelivered || delivery.message.properties.headers[Contract.Header.redelivered] == .bool(true)
        }
    }

    package func handle(_ batch: [Delivery]) throws -> [Outgoing] {
        try handle(batch, bodies: [])
    }

    /// Why a message is parked: the kind (a metric label) and the reason (its header, for people).
    private struct Park {
        var code: String
        var reason: String
    }

    /// `bodies`: the messages' bodies where the caller parsed them already (the fused intake), by index.
    package func handle(_ batch: [Delivery], bodies: [JSON?]) throws -> [Outgoing] {
        var batch = batch, bodies = bodies, unreadable: [Int: String] = [:]
        if batch.contains(where: { TimerBuckets.isBucket($0) }) {
            (batch, bodies, unreadable) = Self.openBuckets(batch, bodies)
        }
        var items = batch.indices.map { prepare(batch[$0], body: $0 < bodies.count ? bodies[$0] : nil) }
        for (i, reason) in unreadable { items[i].park = Park(code: "unreadable_timers", reason: reason) }
        Self.markCopies(&items)
        var pending = Array(items.indices.filter { items[$0].park == nil && !items[$0].barrier && !items[$0].copy })
        var attempt = 0
        while !pending.isEmpty {
            attempt += 1
            if attempt > 1 {
                Meters.count("switchboard_batch_retries_total")
                Thread.sleep(forTimeInterval: Double.random(in: 0...Double(min(attempt, 20))) / 1000)
            }
            // Decisions within a batch build on each other: a later message of the same conversation sees
            // the version and references the earlier one will commit.
            var overlay = Overlay()
            let preloaded: Preloaded
            do {
                preloaded = try preload(items, pending)
            } catch let e as StoreError where !e.isRetriable {
                // What one message needs is more than the store may answer (the remote store has already
                // asked for it alone): that message is parked, never the batch held for ever.
                try isolateRefusedReads(&items, pending)
                let left = pending.filter { items[$0].park == nil }
                // None refused alone: not one message's doing; the batch is held as for any store trouble.
                guard left.count < pending.count else { throw e }
                pending = left
                // Not a retry: nothing was decided or committed in this attempt.
                attempt -= 1
                continue
            }
            for i in pending {
                // A message that cannot be decided again is parked, and its earlier decision not committed.
                items[i].commit = nil
                do {
                    (items[i].commit, items[i].matched) = try decide(items[i], overlay: &overlay, preloaded: preloaded, index: i, retry: attempt > 1)
                } catch let error as StoreError {
                    throw error
                } catch {
                    items[i].park = Park(code: (error as? Unprocessable)?.code ?? "unprocessable", reason: "\(error)")
                }
            }
            // Names each commit of this attempt, so a request the store serves twice is known as ours (see Commit.attempt).
            let committing = pending.filter { items[$0].commit != nil }
            let attemptId = UUID().uuidString
            for (n, i) in committing.enumerated() { items[i].commit?.attempt = "\(attemptId)-\(n)" }
            let outcomes = try commitIsolatingRefusals(committing, &items)
            for (i, outcome) in zip(committing, outcomes) {
                items[i].outcome = outcome
                if case .conflict(let conversation, let digest, let at) = outcome {
                    items[i].park = Park(
                        code: "message_id_reused",
                        reason: Self.reused(items[i], by: "a message applied to conversation \(conversation) at \(at) (digest \(digest))"))
                }
            }
            pending = committing.filter { items[$0].outcome == .stale }
            if !pending.isEmpty && attempt >= Self.maxAttempts {
                // Parked with the reason, never handed back to the broker: a message the store keeps
                // answering "stale" for would come back forever and stop its partition.
                for i in pending {
                    items[i].park = Park(
                        code: "kept_stale",
                        reason: "conversation \(items[i].commit?.conversationId ?? "?") kept changing under this message: its commit was "
                            + "stale \(attempt) times in a row; replay it when the conversation is quiet")
                }
                break
            }
        }
        // Timers this batch schedules together travel together (see TimerBuckets).
        return TimerBuckets.pack(items.flatMap(outgoing))
    }

    /// Each timer bucket of the batch replaced by its timers (lone timer deliveries with their parsed
    /// bodies), in place; a bucket that cannot be opened stays, to be parked whole with the reason.
    private static func openBuckets(_ batch: [Delivery], _ bodies: [JSON?]) -> ([Delivery], [JSON?], [Int: String]) {
        var deliveries: [Delivery] = [], parsed: [JSON?] = [], unreadable: [Int: String] = [:]
        for (i, d) in batch.enumerated() {
            guard TimerBuckets.isBucket(d) else {
                deliveries.append(d)
                parsed.append(i < bodies.count ? bodies[i] : nil)
                continue
            }
            do {
                for t in try TimerBuckets.open(d) {
                    deliveries.append(t.delivery)
                    parsed.append(t.body)
                }
            } catch {
                unreadable[deliveries.count] = error.description
                deliveries.append(d)
                parsed.append(nil)
            }
        }
        return (deliveries, parsed, unreadable)
    }

    /// Commits the batch's decisions. When the store refuses the content (not an outage), the commits go
    /// one at a time to find the messages it refuses; those are parked with the store's reason. A commit
    /// that did not apply as decided (refused, stale, a duplicate, a conflict) breaks its conversation's
    /// chain: the later commits of that conversation in the batch were decided on top of it, so they are
    /// stale and decided again (else one could pass against another writer's version: a lost update).
    /// nil: refused, and the message parked.
    private func commitIsolatingRefusals(_ committing: [Int], _ items: inout [Item]) throws -> [CommitOutcome?] {
        do {
            return try store.commit(committing.map { items[$0].commit! }).map { $0 }
        } catch let e as StoreError where !e.isRetriable {
            var outcomes: [CommitOutcome?] = []
            var broken: Set<String> = []
            for i in committing {
                let commit = items[i].commit!
                if broken.contains(commit.conversationId) {
                    outcomes.append(.stale)
                    continue
                }
                do {
                    let outcome = try store.commit([commit])
                    outcomes.append(contentsOf: outcome)
                    if case .committed? = outcome.first {} else { broken.insert(commit.conversationId) }
                } catch let e as StoreError where !e.isRetriable {
                    logger.warning("the store refused a message", metadata: [
                        "sb.endpoint": "\(items[i].endpoint)", "sb.message-id": "\(items[i].messageId)", "sb.error": "\(e.message)",
                    ])
                    items[i].park = Park(code: "store_refused", reason: "the store refused what this message changes: \(e.message)")
                    broken.insert(commit.conversationId)
                    outcomes.append(nil)
                }
            }
            return outcomes
        }
    }

    /// Reads each pending message's conversation on its own to find those the store refuses to answer for
    /// (too large an answer); those are parked with the store's reason. Infrastructure trouble meanwhile
    /// still holds the batch (thrown).
    private func isolateRefusedReads(_ items: inout [Item], _ pending: [Int]) throws {
        for i in pending {
            do {
                _ = try preload(items, [i])
            } catch let e as StoreError where !e.isRetriable {
                logger.warning("the store refused to read what a message needs", metadata: [
                    "sb.endpoint": "\(items[i].endpoint)", "sb.message-id": "\(items[i].messageId)", "sb.error": "\(e.message)",
                ])
                items[i].park = Park(code: "store_refused", reason: "the store refused to read what this message needs: \(e.message)")
            }
        }
    }

    /// Two copies of one message in a batch apply once (the first); a message_id reused in the batch by
    /// a message that says something else is parked.
    private static func markCopies(_ items: inout [Item]) {
        var first: [InboundKey: Int] = [:]
        for i in items.indices where items[i].park == nil && !items[i].barrier {
            let key = InboundKey(items[i].endpoint, items[i].messageId)
            guard let j = first[key] else {
                first[key] = i
                continue
            }
            if items[j].digest == items[i].digest {
                items[i].copy = true
            } else {
                items[i].park = Park(code: "message_id_reused", reason: reused(items[i], by: "an earlier message of the same batch (digest \(items[j].digest))"))
            }
        }
    }

    private static func reused(_ item: Item, by other: String) -> String {
        "message_id '\(item.messageId)' of endpoint '\(item.endpoint)' was already used by \(other); this message "
            + "(digest \(item.digest)) differs in type, correlation_id or body, so it is not a resend: not applied. "
            + "Give each message a message_id of its own"
    }

    /// Reports how far this batch got through what this process's fused intake routed: everything before
    /// its marks is committed and published now, so the intake may evaluate their partitions' tickets itself.
    package func confirmed(_ batch: [Delivery]) {
        guard let local else { return }
        for d in batch {
            if case .string(let mark)? = d.message.properties.headers[Contract.Header.barrier], let p = Int(d.routingKey) {
                local.passed(partition: p, mark: mark)
            }
        }
    }

    private static func isBarrier(_ d: Delivery) -> Bool {
        d.message.properties.headers[Contract.Header.kind] == .string("barrier")
    }

    private func prepare(_ d: Delivery, body parsed: JSON?) -> Item {
        let endpoint = d.message.properties.headers[Contract.Header.endpoint]?.description ?? ""
        let messageId = d.message.properties.messageId ?? ""
        var item = Item(delivery: d, endpoint: endpoint, messageId: messageId)
        if Self.isBarrier(d) {
            item.barrier = true
            return item
        }
        guard let config = self.config.endpoints[endpoint] ?? (endpoint == Contract.timerEndpoint ? Self.timerEndpoint : nil) else {
            item.park = Park(code: "unknown_endpoint", reason: "unknown endpoint '\(endpoint)' (the configuration changed since intake?)")
            return item
        }
        let body: JSON
        do {
            body = try parsed ?? JSON.parse(d.message.body)
        } catch {
            item.park = Park(code: "invalid_json", reason: "\(error) (endpoint \(endpoint))")
            return item
        }
        item.digest = Contract.digest(type: d.message.properties.type, correlationId: d.message.properties.correlationId, body: d.message.body)
        let facts = config.facts(body: body, amqpType: d.message.properties.type)
        if d.message.properties.headers[Contract.Header.kind]?.description == "timer" {
            var event = InboundEvent(endpoint: endpoint, messageId: messageId, type: EventType.timer, body: body, ticketId: nil)
            event.timer = body["timer"]?.stringValue
            item.event = event
            item.route = Contract.parse(outboundMessageId: messageId)?.route ?? 0
        } else if d.message.properties.headers[Contract.Header.kind]?.description == "ack" {
            item.event = InboundEvent(endpoint: endpoint, messageId: messageId, type: Contract.ackType, body: body, ticketId: nil, who: facts.who)
            item.route = Contract.parse(outboundMessageId: d.message.properties.correlationId ?? "")?.route ?? 0
        } else {
            guard let ticket = facts.ticketId else {
                item.park = Park(code: "no_ticket_id", reason: config.noTicketIdReason)
                return item
            }
            item.event = InboundEvent(
                endpoint: endpoint, messageId: messageId, type: facts.type, body: body, ticketId: ticket, who: facts.who,
                references: facts.references)
            item.route = Contract.route(endpoint: endpoint, ticket: ticket)
        }
        return item
    }

    /// What the batch has decided so far, so later messages see earlier ones.
    private struct Overlay {
        var conversations: [String: ConversationSnapshot] = [:]
        var byReference: [TicketRef: String] = [:]

        mutating func record(_ s: ConversationSnapshot) {
            conversations[s.id] = s
            for (e, t) in s.references { byReference[TicketRef(e, t)] = s.id }
        }
    }


    /// What the store holds for a batch, read before deciding: a few round trips per batch, whatever its
    /// size, instead of one per message (they are requests over the broker for a stateless worker).
    private struct Preloaded {
        /// Ticket messages: the conversation their tickets belong to (nil: none yet), by item index.
        var byItem: [Int: ConversationSnapshot?] = [:]
        /// Acks: the outbound message each answers, by its id.
        var outbounds: [String: StoredOutbound] = [:]
        /// Timers and acks: their conversations, by id.
        var conversations: [String: ConversationSnapshot] = [:]
    }

    private func preload(_ items: [Item], _ pending: [Int]) throws -> Preloaded {
        var p = Preloaded()
        let tickets = pending.filter { items[$0].event.map(Self.isTicketEvent) ?? false }
        if !tickets.isEmpty {
            let found = try storeCall { try store.find(batch: tickets.map { items[$0].event.map(Engine.ticketRefs) ?? [] }) }
            // A short answer would make known tickets look new: never guess, retry the batch.
            try Self.expect(found.count, tickets.count, "conversations")
            p.byItem = Dictionary(uniqueKeysWithValues: zip(tickets, found))
        }
        let correlations = pending.filter { items[$0].event?.type == Contract.ackType }
            .map { items[$0].delivery.message.properties.correlationId ?? "" }
        if !correlations.isEmpty {
            let found = try storeCall { try store.outbound(messageIds: correlations) }
            try Self.expect(found.count, correlations.count, "outbound messages")
            for case let o? in found { p.outbounds[o.messageId] = o }
        }
        let timers = pending.compactMap { i in
            items[i].event?.type == EventType.timer ? items[i].event?.body["conversation"]?.stringValue : nil
        }
        let ids = Array(Set(timers + p.outbounds.values.map(\.conversationId))).sorted()
        if !ids.isEmpty {
            let found = try storeCall { try store.conversations(ids: ids) }
            try Self.expect(found.count, ids.count, "conversations")
            for case let c? in found { p.conversations[c.id] = c }
        }
        return p
    }

    private static func expect(_ got: Int, _ asked: Int, _ what: String) throws {
        guard got == asked else { throw StoreError("the store answered \(got) \(what) for \(asked) asked") }
    }

    /// A message about a ticket (not a timer, not an ack): found by its ticket references.
    private static func isTicketEvent(_ event: InboundEvent) -> Bool {
        event.type != EventType.timer && event.type != Contract.ackType
    }


    /// `preloaded`: what the store held when the batch (attempt) started; `overlay`: what the batch changed
    /// since. Finding the conversation (and, on a retry, who owns a reference already) is the worker's;
    /// the decision itself is the engine's (`Engine.decide`), tested without a broker or a store.
    private func decide(_ item: Item, overlay: inout Overlay, preloaded: Preloaded, index: Int, retry: Bool) throws -> (Commit, [String]) {
        guard let event = item.event else { throw Unprocessable("no event") }
        let snapshot: ConversationSnapshot
        var acked: StoredOutbound?
        if event.type == EventType.timer {
            let id = event.body["conversation"]?.stringValue ?? ""
            guard let s = overlay.conversations[id] ?? preloaded.conversations[id] else {
                throw Unprocessable("timer '\(event.timer ?? "?")' for unknown conversation '\(id)'")
            }
            snapshot = s
        } else if event.type == Contract.ackType {
            let correlation = item.delivery.message.properties.correlationId ?? ""
            guard let answered = preloaded.outbounds[correlation] else {
                throw Unprocessable("ack for unknown message '\(correlation)': no outbound message with that id")
            }
            acked = answered
            snapshot = overlay.conversations[answered.conversationId] ?? preloaded.conversations[answered.conversationId]
                ?? ConversationSnapshot(id: answered.conversationId)
        } else if let id = Engine.ticketRefs(event).compactMap({ overlay.byReference[$0] }).first, let s = overlay.conversations[id] {
            snapshot = s
        } else if let s = preloaded.byItem[index] ?? nil {
            // An earlier message of the batch may have changed it since.
            snapshot = overlay.conversations[s.id] ?? s
        } else {
            snapshot = ConversationSnapshot(id: Contract.newConversationId())
        }
        let now = clock()
        var situation = Situation(
            endpoint: item.endpoint, messageId: item.messageId, route: item.route, event: event, conversation: snapshot,
            acked: acked, now: now)
        situation.keepBodies = config.settings.timelineBodies
        situation.receivedAt = item.receivedAt
        if situation.keepBodies { situation.inboundText = String(decoding: item.delivery.message.body, as: UTF8.self) }
        // On a retry, a reference another conversation owns already is a genuine conflict: not linked (and
        // noted), so the commit cannot go stale forever.
        if retry {
            for ref in engine.candidates(situation) {
                if let owner = try storeCall({ try store.find([ref]) }), owner.id != snapshot.id { situation.takenElsewhere[ref] = owner.id }
            }
        }
        let d = try engine.decide(situation)
        overlay.record(d.next)
        let commit = Commit(
            inbound: InboundKey(item.endpoint, item.messageId), conversationId: snapshot.id, expectedVersion: snapshot.version,
            newReferences: d.newReferences, timeline: d.timeline, outbox: d.outbox, attributes: d.attributes,
            counters: d.counters, failedOutbound: d.failedOutbound, answered: acked.map { [$0.messageId] } ?? [],
            digest: item.digest, at: now)
        return (commit, d.matchedRules)
    }

    /// Store failures are infrastructure trouble (the batch is retried), never the message's fault.
    private func storeCall<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let e as StoreError {
            throw e
        } catch {
            throw StoreError("\(error)")
        }
    }

    /// The metrics of a message decided: applied (with its rules, acks, timers, outbound messages and
    /// latency) or a duplicate.
    private func record(_ item: Item) {
        guard case .committed? = item.outcome, let commit = item.commit, let event = item.event else {
            var duplicate = item.copy
            if case .duplicate? = item.outcome { duplicate = true }
            if duplicate { Meters.count("switchboard_worker_messages_total", [("endpoint", item.endpoint), ("outcome", "duplicate")]) }
            return
        }
        Meters.count("switchboard_worker_messages_total", [("endpoint", item.endpoint), ("outcome", "applied")])
        for rule in item.matched { Meters.count("switchboard_rule_matches_total", [("rule", rule)]) }
        if commit.timeline.contains(where: { $0.kind == .echo }) { Meters.count("switchboard_echoes_total", [("endpoint", item.endpoint)]) }
        if event.type == Contract.ackType {
            let outcome =
                !commit.failedOutbound.isEmpty ? "unhandled" : Engine.ackStatus(event.body).ok ? "ok" : Engine.isWaiting(event.body) ? "waiting" : "error"
            Meters.count("switchboard_acks_total", [("endpoint", item.endpoint), ("outcome", outcome)])
        } else if event.type == EventType.timer {
            Meters.count("switchboard_timers_fired_total")
        }
        for o in commit.outbox {
            if o.kind == .timer {
                Meters.count("switchboard_timers_scheduled_total")
                continue
            }
            Meters.count("switchboard_outbound_messages_total", [("target", o.target), ("type", o.type)])
            if o.delayMs > 0 { Meters.count("switchboard_delays_scheduled_total", [("target", o.target)]) }
        }
        if let received = item.receivedAt {
            Meters.seconds("switchboard_message_latency_seconds", [], Date().timeIntervalSince(received))
        }
    }

    private func outgoing(_ item: Item) -> [Outgoing] {
        if item.barrier { return [] }
        if let park = item.park {
            logger.warning("message parked", metadata: ["sb.endpoint": "\(item.endpoint)", "sb.message-id": "\(item.messageId)", "sb.reason": "\(park.reason)"])
            Meters.count("switchboard_worker_messages_total", [("endpoint", item.endpoint), ("outcome", "parked")])
            return [Parking.park(item.delivery, code: park.code, reason: park.reason, stage: "worker", endpoint: item.endpoint)]
        }
        record(item)
        let outbox: [StoredOutbound]
        switch item.outcome {
        case .committed?: outbox = item.commit?.outbox ?? []
        case .duplicate(_, let stored)?:
            // Redelivered by the broker: we may have crashed between commit and publish, so publish the
            // stored outbox again (same message ids; receivers de-duplicate). A fresh copy instead is an
            // ESB's resend: its first copy already published (or will, when redelivered), so send nothing.
            if item.redelivered {
                logger.info("redelivered message already applied; re-publishing its stored outbound messages",
                            metadata: ["sb.endpoint": "\(item.endpoint)", "sb.message-id": "\(item.messageId)", "sb.outbound": "\(stored.count)"])
                outbox = stored
            } else {
                logger.info("resent message already applied; ignored",
                            metadata: ["sb.endpoint": "\(item.endpoint)", "sb.message-id": "\(item.messageId)"])
                outbox = []
            }
        default: outbox = []
        }
        return outbox.map { o in
            if o.kind == .timer {
                // Back to this conversation's partition after the delay, through sb.delay.work.<ms>.
                let props = Properties(
                    contentType: "application/json", messageId: o.messageId, type: EventType.timer,
                    expiration: String(o.delayMs), appId: "switchboard", persistent: true,
                    headers: [
                        Contract.Header.kind: .string("timer"), Contract.Header.endpoint: .string(Contract.timerEndpoint),
                        Contract.Header.conversation: .string(o.conversationId), Contract.Header.rule: .string(o.rule),
                    ])
                return Outgoing(
                    exchange: Contract.timerDelayExchange(o.delayMs),
                    routingKey: String(Contract.partition(
                        route: Contract.parse(outboundMessageId: o.messageId)?.route ?? 0, partitions: config.settings.partitions)),
                    message: Message(body: o.body, properties: props))
            }
            return Contract.outbound(o, at: clock())
        }
    }
}
