import AMQP
import Foundation
import Logging
import Rules
import Store
import Telemetry

/// A parked message as an administrator reads it.
package struct ParkedMessage: Sendable, Equatable {
    /// Stable while it stays parked (a hash of when and why it was parked, its message id and body):
    /// the handle a replay or discard names, so a bulk action acts on the messages the user saw.
    package var id: String
    /// Its place in the store's order of arrival (0 before it is stored).
    package var seq: Int64 = 0
    package var reason: String
    package var stage: String
    package var endpoint: String?
    package var parkedAt: String
    package var messageId: String?
    package var original: Original?
    /// The body, or its first bytes in a listing (`bodyBytes` is the whole's length).
    package var body: Data
    package var bodyBytes: Int
    /// The ticket id the body names at its endpoint, when it does.
    package var ticket: String?
    /// The parked message's own properties (ours, or what the broker dead-lettered), for a replay.
    package var properties: Properties?
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
        bodyBytes = m.body.count
        properties = m.properties
        let token = origin == .switchboard ? h[Contract.Header.parkedId]?.description ?? "" : ""
        // Parked by intake under the id the ingress already answered the sender with (see
        // `Contract.Header.ingressId`): that id is the row's, so the sender's answer finds it.
        if !token.isEmpty, original?.properties.headers[Contract.Header.ingressId]?.description == token {
            id = token
            return
        }
        var hasher = Hash.FNV64()
        for part in [parkedAt, reason, messageId ?? "", stage, token] {
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

/// What an action did to each message it acted on.
package enum ParkedOutcome: String, Sendable {
    case replayed, discarded, failed
}

/// The store role's loop on `sb.parked`: every message that arrives there (our parking, the broker's
/// dead-lettering, anyone's publish) becomes a row of the store's parked table and is acked only once the
/// row is written. The queue is only a way in: nothing reads it for a page, so a look never counts as a
/// delivery toward a delivery limit, and a replay or discard never puts the others back out of order.
package final class ParkedIntakeHandler: BatchHandler {
    private let store: any ParkedStore
    private let config: SwitchboardConfig
    private let switchboardUser: String
    private let logger: Logger
    package let exclusive: Bool

    package init(store: any ParkedStore, config: SwitchboardConfig, switchboardUser: String, exclusive: Bool, logger: Logger) {
        self.store = store
        self.config = config
        self.switchboardUser = switchboardUser
        self.exclusive = exclusive
        self.logger = logger
    }

    package var queues: [(queue: String, tag: String)] { [(Contract.parkedQueue, "sb-parked-store")] }

    package func handle(_ batch: [Delivery]) throws -> [Outgoing] {
        let rows = batch.map { d in
            var row = ParkedMessage.row(d.message, config: config, switchboardUser: switchboardUser)
            row.redelivered = d.redelivered
            return row
        }
        // A failure (the database away) holds the batch in the loop and tries again: nothing is acked before it is stored.
        try store.park(rows)
        Meters.gauge("switchboard_parked_stored", [], Double(try store.parkedTotal()))
        for r in rows {
            logger.info("parked message stored", metadata: [
                "sb.parked-id": "\(r.id)", "sb.message-id": "\(r.messageId ?? "-")", "sb.endpoint": "\(r.endpoint ?? "-")",
                "sb.stage": "\(r.stage)",
            ])
        }
        return []
    }
}

/// Publishes replays of parked messages (and the admin's try-now copies) with confirms, one at a time, on one connection. Blocking
/// (rabbitmq-c): call from a thread of its own, never from an event loop, and one call at a time
/// (`ParkedActions` awaits each before the next: hence `@unchecked Sendable`).
package final class ParkedPublisher: @unchecked Sendable {
    private let options: ConnectionOptions
    private let logger: Logger
    private var connection: Connection?

    package init(options: ConnectionOptions, logger: Logger) {
        var o = options
        o.connectionName = "switchboard-replay"
        self.options = o
        self.logger = logger
    }

    deinit { connection?.close() }

    /// Where the message goes again and whether the broker took it (confirmed, routed). Throws when it
    /// cannot be replayed (`ReplayHandler.Refused`) or the broker is unreachable.
    package func replay(_ m: ParkedMessage) throws -> String {
        guard let message = m.message else {
            throw ReplayHandler.Refused(description: "its stored properties cannot be read by this release")
        }
        return try publish(try ReplayHandler.replay(message, switchboardUser: options.user), refusal: "it stays parked")
    }

    /// Publishes one message with a confirm; where it went. Throws `ReplayHandler.Refused` when the broker
    /// did not take it (`refusal` says what that means), or the broker's error.
    package func publish(_ target: Outgoing, refusal: String) throws -> String {
        let c: Connection
        if let open = connection {
            c = open
        } else {
            c = try Connection(options, logger: logger)
            try c.enableConfirms()
            connection = c
        }
        do {
            try c.publish(exchange: target.exchange, routingKey: target.routingKey, message: target.message, mandatory: true)
            let confirmed = try c.waitForConfirms(timeout: 30)
            guard confirmed.allConfirmed else {
                throw ReplayHandler.Refused(description: "the broker did not take it (unroutable or refused); \(refusal)")
            }
        } catch let e as AMQPError {
            connection = nil
            c.close()
            throw e
        }
        return "published to \(target.exchange.isEmpty ? "(default exchange)" : target.exchange) with routing key \(target.routingKey)"
    }
}
