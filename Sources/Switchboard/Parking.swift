import AMQP
import Foundation

/// Bad or unprocessable input goes to `sb.parked` with the reason in headers and the body unchanged. Its
/// properties are ours (persistent, no expiration, no one else's user_id); what was published is kept
/// whole in `x-sb-original`, so an operator can read why and replay it as it was once the cause is fixed.
package enum Parking {
    /// `code`: the kind of reason, for the metric `switchboard_parked_messages_total` (few values; the
    /// reason itself names the message's particulars).
    package static func park(body: Data, original: Original, code: String, reason: String, stage: String, endpoint: String?) -> Outgoing {
        Meters.count("switchboard_parked_messages_total", [("endpoint", endpoint ?? "none"), ("stage", stage), ("reason", code)])
        var headers: [String: FieldValue] = [
            Contract.Header.reason: .string(reason),
            Contract.Header.stage: .string(stage),
            Contract.Header.parkedAt: .string(Date().formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))),
            Contract.Header.originalExchange: .string(original.exchange),
            Contract.Header.originalRoutingKey: .string(original.routingKey),
            Contract.Header.original: original.field,
        ]
        if let endpoint { headers[Contract.Header.endpoint] = .string(endpoint) }
        let props = Properties(
            contentType: original.properties.contentType, messageId: original.properties.messageId, appId: "switchboard",
            persistent: true, headers: headers)
        return Outgoing(exchange: "", routingKey: Contract.parkedQueue, message: Message(body: body, properties: props))
    }

    /// A delivery as it is (what it carries as its original, or itself).
    package static func park(_ d: Delivery, code: String, reason: String, stage: String, endpoint: String?) -> Outgoing {
        park(body: d.message.body, original: Original.of(d), code: code, reason: reason, stage: stage, endpoint: endpoint)
    }
}
