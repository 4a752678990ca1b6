import AMQP
import Foundation
import JSONPath
import Logging
import Rules
import Telemetry

/// The intake role: takes what ESBs publish to `sb.in`, checks it, and hands each message to the work
/// partition of its ticket (so one ticket's messages stay in order) or parks it with the reason.
package final class IntakeHandler: BatchHandler, Sendable {
    private let config: SwitchboardConfig
    private let logger: Logger
    private static let unroutedTag = "sb-intake-unrouted"
    private static let tagPrefix = "sb-intake:"

    package let queues: [(queue: String, tag: String)]
    /// The ingress's broker user (from ingress.broker_url): its messages may name their parked id.
    private let ingressUser: String?

    /// `queues`: the share of the inbound queues this intake consumes (`Coordinator.intakes`); all by default.
    package init(config: SwitchboardConfig, logger: Logger, queues: [(queue: String, tag: String)]? = nil) {
        self.config = config
        self.logger = logger
        self.queues = queues ?? Self.queues(config)
        ingressUser = config.ingress.flatMap { try? ConnectionOptions(url: $0.brokerURL).user }
    }

    /// One consumer per inbound queue at a time: two would take turns on a ticket's messages and could
    /// hand them to its partition out of order. The intakes share the queues (`Coordinator.intakes`).
    package var exclusive: Bool { true }

    /// Every queue an intake consumes, in a fixed order (the units the intakes share): one per endpoint,
    /// and the queue of messages published for no endpoint.
    package static func queues(_ config: SwitchboardConfig) -> [(queue: String, tag: String)] {
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
        var original = Self.published(d)
        let props = original.properties
        let kind = props.type == Contract.ackType ? "ack" : "ticket"
        let parkedId = ingressParkedId(props)
        let park = { (code: String, reason: String, endpoint: String?) -> Outgoing in
            self.logger.warning(
                "message parked",
                metadata: ["sb.endpoint": "\(endpoint ?? "-")", "sb.message-id": "\(props.messageId ?? "-")", "sb.reason": "\(reason)"])
            Meters.count("switchboard_intake_messages_total", [("endpoint", endpoint ?? "none"), ("kind", kind), ("outcome", "parked")])
            return Parking.park(body: d.message.body, original: original, code: code, reason: reason, stage: "intake", endpoint: endpoint, id: parkedId)
        }
        // What we publish carries the ESB's headers as data (x-sb-original) beside our own, in one content
        // header frame: a table near the frame size fits the ESB's publish but not ours, and the endpoint's
        // queue would wedge on it. Parked without them (the parked copy stays small), first of all.
        let headerBytes = FieldValue.tableSize(props.headers)
        if headerBytes > config.settings.maxHeaderBytes {
            original.properties.headers = [:]
            let name = d.consumerTag.hasPrefix(Self.tagPrefix) ? String(d.consumerTag.dropFirst(Self.tagPrefix.count)) : nil
            return park(
                "headers_too_large", "its headers take \(headerBytes) bytes, over the limit of \(config.settings.maxHeaderBytes) bytes "
                    + "(settings.max_header_bytes); parked without them (\(props.headers.count) header(s): "
                    + props.headers.keys.sorted().prefix(10).map { String($0.prefix(64)) }.joined(separator: ", ") + ")", name)
        }
        guard d.consumerTag.hasPrefix(Self.tagPrefix) else {
            return park("unknown_endpoint", "unknown endpoint '\(original.routingKey)': no endpoint of that name is configured (known: \(config.endpointNames.joined(separator: ", ")))", nil)
        }
        let name = String(d.consumerTag.dropFirst(Self.tagPrefix.count))
        guard let endpoint = config.endpoints[name] else { return park("unknown_endpoint", "unknown endpoint '\(name)'", nil) }
        if !endpoint.users.isEmpty, !(props.userId.map(endpoint.users.contains) ?? false) {
            let who = props.userId.map { "broker user '\($0)'" } ?? "a publisher that set no user_id"
            return park(
                "user_not_allowed", "published by \(who); endpoint '\(name)' accepts messages from \(endpoint.users.sorted().map { "'\($0)'" }.joined(separator: ", ")) only (endpoints.\(name).users)",
                name)
        }
        let size = d.message.body.count
        guard size <= config.settings.maxMessageBytes else {
            return park("too_large", "message of \(size) bytes exceeds the limit of \(config.settings.maxMessageBytes) bytes (settings.max_message_bytes)", name)
        }
        if props.type == EventType.timer {
            return park("reserved_type", "type 'timer' is reserved for Switchboard's own timers; an ESB cannot send one", name)
        }
        let messageId = props.messageId.flatMap { $0.isEmpty ? nil : $0 }
            ?? Contract.derivedMessageId(endpoint: name, type: props.type, correlationId: props.correlationId, body: d.message.body)
        // Only what we set: the worker reads these, and nothing the ESB set rides along (see `Original`).
        var headers: [String: FieldValue] = [Contract.Header.endpoint: .string(name), Contract.Header.original: original.field]
        if props.messageId?.isEmpty ?? true { headers[Contract.Header.messageIdDerived] = .bool(true) }
        // A replay too: the parked message may have been applied before it was parked (its outbound
        // messages stored, not confirmed); the worker then publishes them instead of deciding again.
        if d.redelivered || Self.isReplay(d) { headers[Contract.Header.redelivered] = .bool(true) }
        let route: UInt64
        if props.type == Contract.ackType {
            guard let correlation = props.correlationId, !correlation.isEmpty else {
                return park("ack_without_correlation_id", "ack without correlation_id: an ack must name the message_id it answers", name)
            }
            guard let answered = Contract.parse(outboundMessageId: correlation) else {
                return park("ack_for_unknown_message", "ack for unknown message '\(correlation)': its correlation_id names no message Switchboard sent", name)
            }
            route = answered.route
            headers[Contract.Header.kind] = .string("ack")
        } else {
            let body: JSON
            do {
                body = try JSON.parse(d.message.body)
            } catch {
                return park("invalid_json", "\(error) (endpoint \(name))", name)
            }
            parsed = body
            let facts = endpoint.facts(body: body, amqpType: props.type)
            // A type read from the body (type_field) is checked like the AMQP type: `timer` is ours, and an
            // ack is an ack only by its AMQP type (with the correlation_id it answers).
            if props.type?.isEmpty ?? true, facts.type == EventType.timer || facts.type == EventType.ack, let field = endpoint.typeField {
                return park(
                    "reserved_type", "type '\(facts.type)' at \(field.source) (endpoints.\(name).type_field) is reserved: "
                        + (facts.type == EventType.ack ? "an ack is sent with the AMQP type 'ack' and a correlation_id" : "an ESB cannot send a timer"),
                    name)
            }
            guard let ticket = facts.ticketId else {
                return park("no_ticket_id", endpoint.noTicketIdReason, name)
            }
            if let problem = Self.problem(ticketId: ticket) {
                return park("bad_ticket_id", "ticket id at \(endpoint.ticketId.source) \(problem) (endpoints.\(name).ticket_id)", name)
            }
            route = Contract.route(endpoint: name, ticket: ticket)
            headers[Contract.Header.kind] = .string("ticket")
        }
        headers[Contract.Header.receivedAt] = .int(Int64((Date().timeIntervalSince1970 * 1000).rounded()))
        let work = Message(body: d.message.body, properties: Properties(
            messageId: messageId, correlationId: props.correlationId, type: props.type, appId: "switchboard",
            persistent: true, headers: headers))
        let partition = Contract.partition(route: route, partitions: config.settings.partitions)
        Meters.count("switchboard_intake_messages_total", [("endpoint", name), ("kind", kind), ("outcome", "routed")])
        return Outgoing(exchange: Contract.workExchange, routingKey: String(partition), message: work)
    }

    /// The parked id the ingress named in its answer: honoured from the ingress's own broker user only
    /// (RabbitMQ checks user_id against the connection's user), and only in the form it makes (16 hex digits).
    private func ingressParkedId(_ props: Properties) -> String? {
        guard let ingressUser, props.userId == ingressUser, let id = props.headers[Contract.Header.ingressId]?.description,
            id.utf8.count == 16, id.allSatisfy(\.isHexDigit)
        else { return nil }
        return id
    }

    /// What the ESB published: the delivery, or for a replay (put straight into the inbound queue through
    /// the default exchange, which ESB users may not write to) the message it keeps.
    static func published(_ d: Delivery) -> Original {
        if isReplay(d), let kept = Original(d.message.properties.headers[Contract.Header.original]) {
            return kept
        }
        return Original(exchange: d.exchange, routingKey: d.routingKey, properties: d.message.properties)
    }

    /// Our replay of a parked inbound message: put into the inbound queue through the default exchange,
    /// where no ESB user may publish.
    static func isReplay(_ d: Delivery) -> Bool {
        d.exchange.isEmpty && d.message.properties.headers[Contract.Header.replay] == .bool(true)
    }

    /// Why a ticket id cannot be a key (too long, control characters), or nil.
    static func problem(ticketId: String) -> String? {
        let length = ticketId.unicodeScalars.count
        if length > Contract.maxTicketIdLength {
            return "is \(length) characters long; the limit is \(Contract.maxTicketIdLength)"
        }
        if let (i, c) = ticketId.unicodeScalars.enumerated().first(where: { $0.element.properties.generalCategory == .control }) {
            return "contains the control character U+\(String(format: "%04X", c.value)) at position \(i + 1)"
        }
        return nil
    }
}
