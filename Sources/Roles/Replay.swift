import AMQP
import Foundation
import Logging
import Rules
import Store

/// Where a parked message goes when it is replayed (`replay`), trusting only what Switchboard wrote.
package enum ReplayHandler {
    package struct Refused: Error, CustomStringConvertible {
        package var description: String
    }

    /// Where a parked message goes again, trusting only what Switchboard wrote (`ParkedOrigin`).
    /// - Our parking: what an ESB published to `sb.in` goes straight into its endpoint's inbound queue,
    ///   carrying what was published as data (`x-sb-replay`): we cannot publish with the ESB's user_id, and
    ///   intake must still see who sent it. Our own messages (timers, outbound) go back to where we
    ///   published them, as they were.
    /// - Dead-lettered by the broker: back into the queue it died in, and only one of our data queues:
    ///   an ESB's message into its inbound queue as the ESB published it (intake checks it again, with
    ///   the user_id the broker checked when the ESB published it), ours (work, outbound, our replay of an
    ///   inbound message) as they were. Its `x-sb-*` headers are never read.
    /// - Anything else is not replayed.
    static func replay(_ parked: Message, switchboardUser: String) throws(Refused) -> Outgoing {
        let origin = ParkedOrigin.of(parked, switchboardUser: switchboardUser)
        switch origin {
        case .switchboard:
            let headers = parked.properties.headers
            guard let original = Original(headers[Contract.Header.original]) else {
                guard let legacy = legacy(parked) else { throw Refused(description: "it names no original exchange and routing key") }
                return legacy
            }
            if original.exchange == Contract.inboundExchange {
                return inbound(body: parked.body, original: original, queue: Contract.inboundQueue(original.routingKey))
            }
            return Outgoing(
                exchange: original.exchange, routingKey: original.routingKey, message: Message(body: parked.body, properties: original.properties))
        case .deadLettered(_, let queue, let exchange, let routingKey):
            let dataQueue = queue.hasPrefix("sb.in.") || queue.hasPrefix("sb.out.") || queue.hasPrefix("sb.work.")
            guard dataQueue else {
                throw Refused(description: "it was dead-lettered from queue '\(queue)', which is not one of Switchboard's data queues")
            }
            let asPublished = Original.deadLettered(parked, exchange: exchange, routingKey: routingKey)
            if queue.hasPrefix("sb.in."), exchange == Contract.inboundExchange {
                // What an ESB published, whatever its headers say.
                return inbound(body: parked.body, original: asPublished, queue: queue)
            }
            if queue.hasPrefix("sb.in.") && !exchange.isEmpty {
                throw Refused(description: "it died in '\(queue)' but was published to exchange '\(exchange)'")
            }
            // Ours: a work or outbound message, or our replay of an inbound message (published through the
            // default exchange, where no ESB user may publish). A work message may have been applied before
            // it died (given back past the delivery limit): marked redelivered, the worker then publishes
            // what it stored instead of taking it for an ESB's resend and sending nothing.
            var properties = asPublished.properties
            if queue.hasPrefix("sb.work.") { properties.headers[Contract.Header.redelivered] = .bool(true) }
            return Outgoing(exchange: "", routingKey: queue, message: Message(body: parked.body, properties: properties))
        case .unknown:
            throw Refused(description: origin.description ?? "unknown origin")
        }
    }

    private static func inbound(body: Data, original: Original, queue: String) -> Outgoing {
        let props = Properties(
            messageId: original.properties.messageId, appId: "switchboard", persistent: true,
            headers: [Contract.Header.replay: .bool(true), Contract.Header.original: original.field])
        return Outgoing(exchange: "", routingKey: queue, message: Message(body: body, properties: props))
    }

    /// Parked by an earlier version (the message's own properties, our headers added): ours removed.
    private static func legacy(_ parked: Message) -> Outgoing? {
        var m = parked
        guard let exchange = m.properties.headers[Contract.Header.originalExchange]?.description,
            let routingKey = m.properties.headers[Contract.Header.originalRoutingKey]?.description
        else { return nil }
        for key in [Contract.Header.reason, Contract.Header.stage, Contract.Header.parkedAt,
                    Contract.Header.originalExchange, Contract.Header.originalRoutingKey, Contract.Header.endpoint]
        {
            m.properties.headers[key] = nil
        }
        return Outgoing(exchange: exchange, routingKey: routingKey, message: m)
    }
}

/// Replays or discards chosen parked messages, from the store's parked table, oldest first (so each
/// ticket's messages go again in the order they were parked). A message leaves the table only after its
/// replay is confirmed by the broker (or when discarded); an interrupted action leaves the rest parked and
/// at most the one in flight replayed twice (intake takes it for the resend it is). Every message acted
/// on is audited: who, why, what happened, on its conversation's timeline when it has one.
package struct ParkedActions: Sendable {
    package var store: any AdminStore
    package var options: ConnectionOptions
    package var logger: Logger

    package init(store: any AdminStore, options: ConnectionOptions, logger: Logger) {
        self.store = store
        self.options = options
        self.logger = logger
    }

    /// `ids`: exactly these (nil: every message parked when it starts, up to `limit`). `progress` hears
    /// of each message acted on (after its audit record is written); false stops the action.
    package func run(
        replay: Bool, ids: [String]?, limit: Int = .max, who: String, reason: String,
        progress: @Sendable (ParkedMessage, ParkedOutcome, String) async -> Bool = { _, _, _ in true }
    ) async throws {
        let publisher = ParkedPublisher(options: options, logger: logger)
        let user = options.user
        var after: Int64 = 0
        var done = 0
        var wanted = ids.map(Set.init)
        // The chosen ones in the store's order, a page at a time; bodies read one by one.
        pages: while done < limit {
            let page = try await store.parked(ParkedQuery(ids: wanted.map(Array.init), after: after, limit: 200, excerpt: 0))
            guard let last = page.last else { break }
            after = last.seq
            for head in page {
                guard done < limit else { break pages }
                guard let row = try await store.parked(ParkedQuery(ids: [head.id], limit: 1, excerpt: nil)).first else { continue }
                wanted?.remove(row.id)
                let m = ParkedMessage(row: row, switchboardUser: user)
                var outcome = ParkedOutcome.discarded
                var detail = "removed from the parked messages"
                if replay {
                    do {
                        detail = try await Offload.run { try publisher.replay(m) }
                        outcome = .replayed
                    } catch let refused as ReplayHandler.Refused {
                        outcome = .failed
                        detail = "not replayed: \(refused)"
                    }
                }
                if outcome != .failed { _ = try await store.removeParked(id: row.id) }
                done += 1
                await audit(m, outcome: outcome, detail: detail, who: who, reason: reason, action: replay ? "replay" : "discard")
                if !(await progress(m, outcome, detail)) { break pages }
            }
        }
    }

    private func audit(_ m: ParkedMessage, outcome: ParkedOutcome, detail: String, who: String, reason: String, action: String) async {
        var conversation: String?
        if let endpoint = m.endpoint, let ticket = m.ticket {
            conversation = try? await store.tickets(ticket, endpoints: [endpoint]).first?.conversationId
        }
        let record = AuditRecord(
            at: Date(), who: who, action: outcome == .failed ? "\(action)-failed" : action, reason: reason, conversationId: conversation,
            endpoint: m.endpoint, messageId: m.messageId, parkedId: m.id, detail: "\(detail); it was parked for: \(m.reason)")
        do {
            try await store.append(audit: record)
        } catch {
            logger.error("could not record an administrator's action", metadata: ["sb.parked-id": "\(m.id)", "sb.error": "\(error)"])
        }
        logger.notice("parked message \(outcome.rawValue)", metadata: [
            "sb.parked-id": "\(m.id)", "sb.message-id": "\(m.messageId ?? "-")", "sb.who": "\(who)",
        ])
    }
}
