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

    package init(limit: Int, stop: StopFlag, logger: Logger) {
        self.limit = limit
        self.stop = stop
        self.logger = logger
    }

    package var queues: [(queue: String, tag: String)] { [(Contract.parkedQueue, "sb-replay")] }
    package var exclusive: Bool { false }

    package func handle(_ batch: [Delivery]) throws -> [Outgoing] {
        var out: [Outgoing] = []
        for d in batch {
            guard replayed < limit, let target = Self.replay(d.message) else {
                // Over the limit, or not something we parked: leave it parked, unchanged, at the end.
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

    /// Where a parked message goes again. What an ESB published to `sb.in` goes straight into its
    /// endpoint's inbound queue, carrying what was published as data (`x-sb-replay`): we cannot publish
    /// with the ESB's user_id, and intake must still see who sent it. Our own messages (timers, outbound)
    /// go back to where we published them, as they were.
    static func replay(_ parked: Message) -> Outgoing? {
        let headers = parked.properties.headers
        guard let original = Original(headers[Contract.Header.original]) else { return legacy(parked) }
        if original.exchange == Contract.inboundExchange {
            let props = Properties(
                messageId: original.properties.messageId, appId: "switchboard", persistent: true,
                headers: [Contract.Header.replay: .bool(true), Contract.Header.original: original.field])
            return Outgoing(
                exchange: "", routingKey: Contract.inboundQueue(original.routingKey), message: Message(body: parked.body, properties: props))
        }
        return Outgoing(
            exchange: original.exchange, routingKey: original.routingKey, message: Message(body: parked.body, properties: original.properties))
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
        let handler = ReplayHandler(limit: wanted, stop: stop, logger: logger)
        // Batches of one: the limit is exact, and replay is an operator's action, not a hot path.
        ConsumerLoop(
            name: "replay", options: options, topology: Topology(config: config), prefetch: 1, batchSize: 1,
            handler: handler, stopFlag: stop, logger: logger
        ).run()
        return handler.replayed
    }
}
