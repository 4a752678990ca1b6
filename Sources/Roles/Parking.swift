import AMQP
import Foundation
import Rules
import Telemetry

/// Bad or unprocessable input goes to `sb.parked` with the reason in headers and the body unchanged. Its
/// properties are ours (persistent, no expiration, no one else's user_id); what was published is kept
/// whole in `x-sb-original`, so an operator can read why and replay it as it was once the cause is fixed.
package enum Parking {
    /// `code`: the kind of reason, for the metric `switchboard_parked_messages_total` (few values; the
    /// reason itself names the message's particulars).
    /// `id`: the parked id to give it (what the ingress already answered); a new one when nil.
    package static func park(
        body: Data, original: Original, code: String, reason: String, stage: String, endpoint: String?, id: String? = nil
    ) -> Outgoing {
        Meters.count("switchboard_parked_messages_total", [("endpoint", endpoint ?? "none"), ("stage", stage), ("reason", code)])
        var headers: [String: FieldValue] = [
            Contract.Header.reason: .string(reason),
            Contract.Header.stage: .string(stage),
            Contract.Header.parkedAt: .string(Date().formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true))),
            Contract.Header.parkedId: .string(id ?? MessageIds.hex(UInt64.random(in: .min ... .max))),
            Contract.Header.originalExchange: .string(original.exchange),
            Contract.Header.originalRoutingKey: .string(original.routingKey),
            Contract.Header.original: original.field,
        ]
        if let endpoint { headers[Contract.Header.endpoint] = .string(endpoint) }
        let props = Properties(
            contentType: original.properties.contentType, messageId: original.properties.messageId, appId: "switchboard",
            persistent: true, headers: headers)
        return Outgoing(exchange: "", routingKey: Contract.parkedQueue, message: Message(body: body, properties: props), signed: true)
    }

    /// A delivery as it is (what it carries as its original, or itself).
    package static func park(_ d: Delivery, code: String, reason: String, stage: String, endpoint: String?) -> Outgoing {
        park(body: d.message.body, original: Original.of(d), code: code, reason: reason, stage: stage, endpoint: endpoint)
    }
}

/// Who put a message into `sb.parked`, as far as anyone can prove it. Only our own parking may speak
/// through its `x-sb-*` headers (where a replay goes, who published it): with the production policy the
/// broker also dead-letters ESBs' own messages into `sb.parked` (expired, past the delivery limit,
/// rejected), with every header the ESB put on them, so those are data and nothing else.
package enum ParkedOrigin: Equatable, Sendable {
    /// Parked by Switchboard: published with our broker user as `user_id` (the broker refuses any other
    /// publisher's claim to it), never dead-lettered (no `x-death`).
    case switchboard
    /// Dead-lettered by the broker (`x-death`, newest first, which the broker writes): why, and the
    /// queue it died in, with the exchange and routing key it had been published with.
    case deadLettered(reason: String, queue: String, exchange: String, routingKey: String?)
    /// Neither: published into `sb.parked` by someone else (an operator's hand, a misconfigured user).
    case unknown(userId: String?)

    package static func of(_ m: Message, switchboardUser: String) -> ParkedOrigin {
        let h = m.properties.headers
        if case .array(let deaths)? = h["x-death"], case .table(let newest)? = deaths.first {
            var keys: [String] = []
            if case .array(let ks)? = newest["routing-keys"] { keys = ks.map(\.description) }
            return .deadLettered(
                reason: newest["reason"]?.description ?? "?", queue: newest["queue"]?.description ?? "?",
                exchange: newest["exchange"]?.description ?? "", routingKey: keys.first)
        }
        if m.properties.userId == switchboardUser { return .switchboard }
        // Parked before parking was signed (no user_id): nothing else reaches sb.parked without x-death,
        // since ESB users may write only sb.in and every way from there into sb.parked is dead-lettering.
        if m.properties.userId == nil, h[Contract.Header.parkedAt] != nil { return .switchboard }
        return .unknown(userId: m.properties.userId)
    }

    /// What an operator reads for a message the broker dead-lettered.
    package var description: String? {
        switch self {
        case .switchboard: return nil
        case .deadLettered(let reason, let queue, _, _):
            let why = ["expired": "expired", "delivery_limit": "past the delivery limit", "rejected": "rejected by its consumer",
                       "maxlen": "over the queue's length limit"][reason] ?? reason
            return "dead-lettered by the broker: \(why), from queue \(queue)"
        case .unknown(let user):
            return "not parked by Switchboard (published into \(Contract.parkedQueue) by \(user.map { "broker user '\($0)'" } ?? "a publisher that set no user_id"))"
        }
    }
}
