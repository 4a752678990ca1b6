import AMQP
import Foundation
import Logging
import Rules

/// `switchboard parked replay`: puts parked messages back where they were first published, once the
/// cause (configuration, a missing queue) is fixed. Runs the same consume-publish-confirm-ack cycle as
/// every role, so a message is removed from `sb.parked` only after its replay is confirmed; one that
/// fails again is parked again with the new reason.
package final class ReplayHandler: BatchHandler {
    private let limit: Int
    private let stop: StopFlag
    private let logger: Logger
    package private(set) var replayed = 0

    private let switchboardUser: String

    package init(limit: Int, switchboardUser: String, stop: StopFlag, logger: Logger) {
        self.limit = limit
        self.switchboardUser = switchboardUser
        self.stop = stop
        self.logger = logger
    }

    package var queues: [(queue: String, tag: String)] { [(Contract.parkedQueue, "sb-replay")] }
    package var exclusive: Bool { false }

    package func handle(_ batch: [Delivery]) throws -> [Outgoing] {
        var out: [Outgoing] = []
        for d in batch {
            guard replayed < limit else {
                out.append(Outgoing(exchange: "", routingKey: Contract.parkedQueue, message: d.message))
                continue
            }
            let target: Outgoing
            do {
                target = try Self.replay(d.message, switchboardUser: switchboardUser)
            } catch {
                // Not something we can replay: it stays parked, unchanged, at the end.
                logger.warning("parked message not replayed", metadata: [
                    "sb.message-id": "\(d.message.properties.messageId ?? "-")", "sb.reason": "\(error)",
                ])
                out.append(Outgoing(exchange: "", routingKey: Contract.parkedQueue, message: d.message))
                continue
            }
            replayed += 1
            logger.info("replaying parked message", metadata: [
                "sb.message-id": "\(d.message.properties.messageId ?? "-")", "sb.exchange": "\(target.exchange)",
                "sb.routing-key": "\(target.routingKey)",
            ])
            out.append(target)
        }
        if replayed >= limit { stop.stop() }
        return out
    }

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

extension Application {
    /// Replays up to `limit` parked messages (all that are parked now, by default); returns how many.
    package static func replayParked(config: SwitchboardConfig, limit: Int?, logger: Logger) throws -> Int {
        let options = try brokerOptions(config)
        let probe = try Connection(options, logger: logger)
        try Topology(config: config).declare(on: probe)
        let depth = try probe.queueDepth(Contract.parkedQueue).messages
        probe.close()
        let wanted = min(limit ?? depth, depth)
        guard wanted > 0 else { return 0 }
        let stop = StopFlag()
        let handler = ReplayHandler(limit: wanted, switchboardUser: options.user, stop: stop, logger: logger)
        // Batches of one: the limit is exact, and replay is an operator's action, not a hot path.
        ConsumerLoop(
            name: "replay", options: options, topology: Topology(config: config), prefetch: 1, batchSize: 1,
            handler: handler, stopFlag: stop, logger: logger
        ).run()
        return handler.replayed
    }
}
