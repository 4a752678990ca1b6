import AMQP
import Foundation

/// Bad or unprocessable input goes to `sb.parked` with the reason and its origin in headers, body and
/// properties unchanged, so an operator can read why and replay it once the cause is fixed.
package enum Parking {
    package static func park(
        _ message: Message, reason: String, stage: String, endpoint: String?, exchange: String, routingKey: String
    ) -> Outgoing {
        var m = message
        m.properties.persistent = true
        m.properties.headers[Contract.Header.reason] = .string(reason)
        m.properties.headers[Contract.Header.stage] = .string(stage)
        m.properties.headers[Contract.Header.parkedAt] = .string(ISO8601DateFormatter().string(from: Date()))
        m.properties.headers[Contract.Header.originalExchange] = .string(exchange)
        m.properties.headers[Contract.Header.originalRoutingKey] = .string(routingKey)
        if let endpoint { m.properties.headers[Contract.Header.endpoint] = .string(endpoint) }
        return Outgoing(exchange: "", routingKey: Contract.parkedQueue, message: m)
    }
}
