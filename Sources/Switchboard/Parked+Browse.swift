import AMQP
import Foundation
import Logging
import Rules

/// A parked message as an administrator reads it.
package struct ParkedMessage: Sendable, Equatable {
    /// Stable while it stays parked (a hash of when and why it was parked, its message id and body):
    /// the handle a replay or discard names, so a bulk action acts on the messages the user saw.
    package var id: String
    package var reason: String
    package var stage: String
    package var endpoint: String?
    package var parkedAt: String
    package var messageId: String?
    package var original: Original?
    package var body: Data
    /// Who parked it; only Switchboard's own parking is read for its reason, stage and original.
    package var origin: ParkedOrigin

    package init(_ m: Message, switchboardUser: String) {
        let h = m.properties.headers
        origin = ParkedOrigin.of(m, switchboardUser: switchboardUser)
        switch origin {
        case .switchboard:
            reason = h[Contract.Header.reason]?.description ?? "(no reason recorded)"
            stage = h[Contract.Header.stage]?.description ?? ""
            endpoint = h[Contract.Header.endpoint]?.description
            parkedAt = h[Contract.Header.parkedAt]?.description ?? ""
            original = Original(h[Contract.Header.original])
        case .deadLettered(_, let queue, let exchange, let routingKey):
            reason = origin.description ?? ""
            stage = "broker"
            endpoint = ["sb.in.", "sb.out."].first(where: queue.hasPrefix).map { String(queue.dropFirst($0.count)) }
            var deaths: [FieldValue] = []
            if case .array(let a)? = h["x-death"] { deaths = a }
            if case .table(let newest)? = deaths.first, case .timestamp(let t)? = newest["time"] {
                parkedAt = Date(timeIntervalSince1970: TimeInterval(t)).formatted(Date.ISO8601FormatStyle())
            } else {
                parkedAt = ""
            }
            original = Original.deadLettered(m, exchange: exchange, routingKey: routingKey)
        case .unknown:
            reason = origin.description ?? ""
            stage = ""
            endpoint = nil
            parkedAt = ""
            original = nil
        }
        messageId = m.properties.messageId ?? original?.properties.messageId
        body = m.body
        var hasher = Hash.FNV64()
        for part in [parkedAt, reason, messageId ?? "", stage] {
            hasher.add(part)
            hasher.add([0])
        }
        hasher.add(m.body)
        id = MessageIds.hex(hasher.value)
    }

    /// The reason with what varies between messages left out (quoted names, numbers), so that messages
    /// parked for the same cause fall into one group.
    package var reasonGroup: String {
        var s = reason.replacing(/'[^']*'/, with: "'…'")
        s = s.replacing(/"[^"]*"/, with: "\"…\"")
        s = s.replacing(/\d+/, with: "N")
        return s
    }
}

/// What an action did to each message it found.
package enum ParkedOutcome: String, Sendable {
    case replayed, discarded, failed
}

/// The parked queue for the administrator: read it without taking anything away, and replay or discard
/// chosen messages. Blocking (rabbitmq-c): call from a thread of its own, never from an event loop.
package struct ParkedQueue: Sendable {
    package var options: ConnectionOptions
    package var logger: Logger

    package init(options: ConnectionOptions, logger: Logger) {
        var o = options
        o.connectionName = "switchboard-admin"
        self.options = o
        self.logger = logger
    }

    /// Up to `limit` parked messages, oldest first, and how many are parked in all. They are received
    /// unacknowledged and handed back when the connection closes: nothing leaves the queue.
    package func browse(limit: Int) throws -> (total: Int, messages: [ParkedMessage]) {
        let c = try Connection(options, logger: logger)
        defer { c.close() }
        let total = try c.queueDepth(Contract.parkedQueue).messages
        guard total > 0, limit > 0 else { return (total, []) }
        try c.qos(prefetch: min(limit, 1000))
        try c.consume(Contract.parkedQueue)
        var out: [ParkedMessage] = []
        let wanted = min(limit, total)
        while out.count < wanted, let d = try c.nextDelivery(timeout: out.isEmpty ? 2 : 0.3) {
            out.append(ParkedMessage(d.message, switchboardUser: options.user))
        }
        return (total, out)
    }

    /// Goes once through the messages parked now; those whose id is in `ids` are replayed (published
    /// where `switchboard parked replay` would, confirmed, then removed) or discarded (removed); the rest
    /// are parked again unchanged at the end. `progress` hears of each chosen one; it returns false to stop.
    package func act(
        replay: Bool, ids: Set<String>, progress: (ParkedMessage, ParkedOutcome, String) -> Bool
    ) throws {
        let c = try Connection(options, logger: logger)
        defer { c.close() }
        try c.enableConfirms()
        var remaining = ids
        var left = try c.queueDepth(Contract.parkedQueue).messages
        try c.qos(prefetch: 1)
        try c.consume(Contract.parkedQueue)
        while left > 0, !remaining.isEmpty, let d = try c.nextDelivery(timeout: 5) {
            left -= 1
            let p = ParkedMessage(d.message, switchboardUser: options.user)
            guard remaining.contains(p.id) else {
                try c.publish(exchange: "", routingKey: Contract.parkedQueue, message: d.message)
                guard try c.waitForConfirms(timeout: 30).allConfirmed else { throw AMQPError(.timeout, "the broker refused a parked message") }
                try c.ack(d)
                continue
            }
            remaining.remove(p.id)
            var outcome = ParkedOutcome.discarded
            var detail = "removed from \(Contract.parkedQueue)"
            if replay {
                let target: Outgoing
                do {
                    target = try ReplayHandler.replay(d.message, switchboardUser: options.user)
                } catch {
                    try c.nack(d, requeue: true)
                    if !progress(p, .failed, "not replayed: \(error)") { return }
                    continue
                }
                try c.publish(exchange: target.exchange, routingKey: target.routingKey, message: target.message)
                let confirmed = try c.waitForConfirms(timeout: 30)
                guard confirmed.allConfirmed else {
                    try c.nack(d, requeue: true)
                    if !progress(p, .failed, "the broker did not take the replay (unroutable or refused); it stays parked") { return }
                    continue
                }
                outcome = .replayed
                detail = "published to \(target.exchange.isEmpty ? "(default exchange)" : target.exchange) with routing key \(target.routingKey)"
            }
            try c.ack(d)
            if !progress(p, outcome, detail) { return }
        }
    }
}
