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
            var m = d.message
            let headers = m.properties.headers
            let exchange = headers[Contract.Header.originalExchange]?.description
            let routingKey = headers[Contract.Header.originalRoutingKey]?.description
            if replayed >= limit || exchange == nil || routingKey == nil {
                // Over the limit, or not something we parked: leave it parked, unchanged, at the end.
                out.append(Outgoing(exchange: "", routingKey: Contract.parkedQueue, message: d.message))
                continue
            }
            for key in [Contract.Header.reason, Contract.Header.stage, Contract.Header.parkedAt,
                        Contract.Header.originalExchange, Contract.Header.originalRoutingKey]
            {
                m.properties.headers[key] = nil
            }
            // Intake sets the endpoint header again; a stale one would only confuse it.
            if exchange == Contract.inboundExchange { m.properties.headers[Contract.Header.endpoint] = nil }
            replayed += 1
            logger.info("replaying parked message", metadata: [
                "sb.message-id": "\(m.properties.messageId ?? "-")", "sb.exchange": "\(exchange!)", "sb.routing-key": "\(routingKey!)",
            ])
            out.append(Outgoing(exchange: exchange!, routingKey: routingKey!, message: m))
        }
        if replayed >= limit { stop.stop() }
        return out
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
