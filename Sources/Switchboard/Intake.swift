import AMQP
import Foundation
import JSONPath
import Logging
import Rules

/// The intake role: takes what ESBs publish to `sb.in`, checks it, and hands each message to the work
/// partition of its ticket (so one ticket's messages stay in order) or parks it with the reason.
package final class IntakeHandler: BatchHandler {
    private let config: SwitchboardConfig
    private let logger: Logger
    private static let unroutedTag = "sb-intake-unrouted"
    private static let tagPrefix = "sb-intake:"

    package init(config: SwitchboardConfig, logger: Logger) {
        self.config = config
        self.logger = logger
    }

    /// One consumer per inbound queue at a time: two would take turns on a ticket's messages and could
    /// hand them to its partition out of order. Another intake process waits as a standby.
    package var exclusive: Bool { true }

    package var queues: [(queue: String, tag: String)] {
        config.endpointNames.map { (Contract.inboundQueue($0), Self.tagPrefix + $0) }
            + [(Contract.unroutedQueue, Self.unroutedTag)]
    }

    package func handle(_ batch: [Delivery]) throws -> [Outgoing] {
        batch.map(route)
    }

    /// Where one delivery goes: a work partition, or the parked queue.
    package func route(_ d: Delivery) -> Outgoing {
        var body: JSON?
        return route(d, body: &body)
    }

    /// The same, handing back the body it parsed (a ticket message's), so the fused intake's worker need
    /// not parse it again.
    package func route(_ d: Delivery, body parsed: inout JSON?) -> Outgoing {
        let park = { (reason: String, endpoint: String?) -> Outgoing in
            self.logger.warning(
                "message parked",
                metadata: ["sb.endpoint": "\(endpoint ?? "-")", "sb.message-id": "\(d.message.properties.messageId ?? "-")", "sb.reason": "\(reason)"])
            return Parking.park(d.message, reason: reason, stage: "intake", endpoint: endpoint, exchange: d.exchange, routingKey: d.routingKey)
        }
        guard d.consumerTag.hasPrefix(Self.tagPrefix) else {
            return park("unknown endpoint '\(d.routingKey)': no endpoint of that name is configured (known: \(config.endpointNames.joined(separator: ", ")))", nil)
        }
        let name = String(d.consumerTag.dropFirst(Self.tagPrefix.count))
        guard let endpoint = config.endpoints[name] else { return park("unknown endpoint '\(name)'", nil) }
        let size = d.message.body.count
        guard size <= config.settings.maxMessageBytes else {
            return park("message of \(size) bytes exceeds the limit of \(config.settings.maxMessageBytes) bytes (settings.max_message_bytes)", name)
        }
        var message = d.message
        if message.properties.messageId?.isEmpty ?? true {
            message.properties.messageId = Contract.derivedMessageId(endpoint: name, body: message.body)
            message.properties.headers[Contract.Header.messageIdDerived] = .bool(true)
        }
        let route: UInt64
        if message.properties.type == Contract.ackType {
            guard let correlation = message.properties.correlationId, !correlation.isEmpty else {
                return park("ack without correlation_id: an ack must name the message_id it answers", name)
            }
            guard let answered = Contract.parse(outboundMessageId: correlation) else {
                return park("ack for unknown message '\(correlation)': its correlation_id names no message Switchboard sent", name)
            }
            route = answered.route
            message.properties.headers[Contract.Header.kind] = .string("ack")
        } else {
            let body: JSON
            do {
                body = try JSON.parse(message.body)
            } catch {
                return park("\(error) (endpoint \(name))", name)
            }
            parsed = body
            guard let ticket = endpoint.facts(body: body, amqpType: message.properties.type).ticketId else {
                return park("no ticket id at \(endpoint.ticketId.source) (endpoints.\(name).ticket_id)", name)
            }
            route = Contract.route(endpoint: name, ticket: ticket)
            message.properties.headers[Contract.Header.kind] = .string("ticket")
        }
        message.properties.headers[Contract.Header.endpoint] = .string(name)
        message.properties.persistent = true
        if d.redelivered { message.properties.headers[Contract.Header.redelivered] = .bool(true) }
        let partition = Contract.partition(route: route, partitions: config.settings.partitions)
        return Outgoing(exchange: Contract.workExchange, routingKey: String(partition), message: message)
    }
}
