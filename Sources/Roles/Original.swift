import AMQP
import Foundation

/// What a publisher published: exchange, routing key and every property and header, as they came. Our
/// work and parked messages carry it as data (header `x-sb-original`), never as their own properties: an
/// ESB's `user_id` on our publish would make the broker close our channel, its `expiration` would make a
/// parked message vanish, its `x-sb-*` headers would speak for us. Replay publishes it again as it was.
package struct Original: Sendable, Equatable {
    package var exchange: String
    package var routingKey: String
    package var properties: Properties

    package init(exchange: String, routingKey: String, properties: Properties) {
        self.exchange = exchange
        self.routingKey = routingKey
        self.properties = properties
    }

    package init?(_ value: FieldValue?) {
        guard case .table(let t)? = value, case .string(let exchange)? = t["exchange"],
            case .string(let routingKey)? = t["routing_key"], case .table(let props)? = t["properties"]
        else { return nil }
        self.init(exchange: exchange, routingKey: routingKey, properties: Properties(table: props))
    }

    package var field: FieldValue {
        .table(["exchange": .string(exchange), "routing_key": .string(routingKey), "properties": .table(properties.table)])
    }

    /// Headers the broker adds when it dead-letters or redelivers: not part of what was published.
    private static let brokerHeaders: Set<String> = ["x-death", "x-delivery-count"]

    /// The original of a message: the one it carries, else the message itself as published (an internal
    /// one, or one that never went through intake), without what the broker added on the way.
    package static func of(_ message: Message, exchange: String, routingKey: String) -> Original {
        if let kept = Original(message.properties.headers[Contract.Header.original]) { return kept }
        var props = message.properties
        props.headers = withoutBrokerHeaders(props.headers)
        return Original(exchange: exchange, routingKey: routingKey, properties: props)
    }

    /// What was published, for a message the broker dead-lettered: its own properties less what the broker
    /// added, with the exchange and routing key of its newest `x-death` entry. Never what its headers claim.
    package static func deadLettered(_ m: Message, exchange: String, routingKey: String?) -> Original {
        var props = m.properties
        props.headers = withoutBrokerHeaders(props.headers)
        return Original(exchange: exchange, routingKey: routingKey ?? "", properties: props)
    }

    package static func withoutBrokerHeaders(_ headers: [String: FieldValue]) -> [String: FieldValue] {
        headers.filter { !brokerHeaders.contains($0.key) && !$0.key.hasPrefix("x-first-death-") && !$0.key.hasPrefix("x-last-death-") }
    }

    package static func of(_ d: Delivery) -> Original {
        of(d.message, exchange: d.exchange, routingKey: d.routingKey)
    }
}
