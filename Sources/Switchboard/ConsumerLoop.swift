import AMQP
import Foundation
import Logging
import Rules
import Synchronization

/// A message to publish as the result of a batch.
package struct Outgoing: Sendable {
    package var exchange: String
    package var routingKey: String
    package var message: Message
    /// Return it (and park it) when no queue takes it. Off for replies to a caller that may have gone.
    package var mandatory: Bool
    /// Published with our broker user as `user_id` (which the broker checks): our own parking, so that
    /// replay can tell it from what the broker dead-letters into `sb.parked` on an ESB's behalf.
    package var signed: Bool

    package init(exchange: String, routingKey: String, message: Message, mandatory: Bool = true, signed: Bool = false) {
        self.exchange = exchange
        self.routingKey = routingKey
        self.message = message
        self.mandatory = mandatory
        self.signed = signed
    }

    /// The message as it is published by a connection of `user`.
    package func message(as user: String) -> Message {
        guard signed else { return message }
        var m = message
        m.properties.userId = user
        return m
    }
}

/// Processes a batch of deliveries into messages to publish. Bad input is turned into parked messages
/// by the handler itself; a thrown error means "infrastructure trouble": the batch is requeued whole.
package protocol BatchHandler: AnyObject {
    /// Queue name -> consumer tag to use; the handler tells its deliveries apart by tag.
    var queues: [(queue: String, tag: String)] { get }
    /// Consume exclusively: the broker refuses a second consumer on the same queue (work partitions:
    /// one ticket's messages must never be processed by two workers at once).
    var exclusive: Bool { get }
    func handle(_ batch: [Delivery]) throws -> [Outgoing]
    /// Called once a batch's outgoing messages are confirmed and the batch acked.
    func confirmed(_ batch: [Delivery])
}

extension BatchHandler {
    package func confirmed(_ batch: [Delivery]) {}
}

/// A one-shot flag, set from any thread (signal handling), read by the loop between blocking calls.
package final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    package init() {}
    package func stop() { flag.store(true, ordering: .relaxed) }
    package var isStopped: Bool { flag.load(ordering: .relaxed) }
}

/// The consume -> handle -> publish with confirms -> ack cycle, on one connection owned by one thread,
/// with reconnection. Invariant: a delivery is acked only after everything it caused is confirmed by the
/// broker; after a connection loss nothing from the old connection is acked (its messages come back).
package final class ConsumerLoop {
    private let name: String
    private let options: ConnectionOptions
    private let topology: Topology
    private let prefetch: Int
    private let batchSize: Int
    private let handler: BatchHandler
    private let stopFlag: StopFlag
    private let logger: Logger
    private let health: Readiness
    private let role: String
    /// How long the broker may take to confirm a batch's messages (time it blocks publishing does not count).
    private let confirmTimeout: TimeInterval
    /// Batches given back in a row (store or broker trouble): the pause before the next attempt doubles
    /// from 1 s up to 15 s, so an outage redelivers each message a few times a minute, not every second
    /// (a quorum queue's delivery-limit counts redeliveries; Deploy/rabbitmq sets it to 100).
    private var givenBack = 0

    package init(
        name: String, options: ConnectionOptions, topology: Topology, prefetch: Int, batchSize: Int,
        handler: BatchHandler, stopFlag: StopFlag, logger: Logger, health: Readiness = .shared,
        confirmTimeout: TimeInterval = 30
    ) {
        self.name = name
        self.confirmTimeout = confirmTimeout
        self.health = health
        role = Meters.role(name)
        Meters.count("switchboard_broker_reconnects_total", [("role", role)], by: 0)
        var options = options
        // Shown in the management UI and `rabbitmqctl list_consumers`: which process holds what.
        options.connectionName = "switchboard \(name) pid \(ProcessInfo.processInfo.processIdentifier)"
        self.options = options
        self.topology = topology
        self.prefetch = prefetch
        self.batchSize = batchSize
        self.handler = handler
        self.stopFlag = stopFlag
        self.logger = logger
    }

    /// A role's loop with the configuration's topology, prefetch and batch size.
    package convenience init(
        name: String, config: SwitchboardConfig, options: ConnectionOptions, handler: BatchHandler, stopFlag: StopFlag,
        logger: Logger, health: Readiness = .shared
    ) {
        self.init(
            name: name, options: options, topology: Topology(config: config), prefetch: config.settings.prefetch,
            batchSize: config.settings.batchSize, handler: handler, stopFlag: stopFlag, logger: logger, health: health,
            confirmTimeout: TimeInterval(config.settings.confirmTimeoutMs) / 1000)
    }

    /// Runs until the stop flag is set; then finishes the batch in hand, acks it, and returns.
    package func run() {
        var backoff: TimeInterval = 0.2
        var connectedOnce = false
        var standingBy = false
        health.set(name, ready: false, "connecting to the broker")
        Meters.gauge("switchboard_broker_blocked", [("loop", name)], 0)
        defer {
            health.remove(name)
            Meters.gauge("switchboard_broker_connected", [("loop", name)], 0)
            Meters.gauge("switchboard_broker_blocked", [("loop", name)], 0)
        }
        while !stopFlag.isStopped {
            var connection: Connection?
            do {
                let c = try Connection(options, logger: logger)
                connection = c
                c.onBlocked = { [name, health, queues = handler.queues.count] reason in
                    // Not a fault of this process: still ready; what it published waits in the broker.
                    Meters.gauge("switchboard_broker_blocked", [("loop", name)], reason == nil ? 0 : 1)
                    health.set(
                        name, ready: true,
                        reason.map { "the broker blocks publishing (\($0)); the batch in hand waits for it" } ?? "consuming \(queues) queue(s)")
                }
                try topology.declare(on: c)
                try c.enableConfirms()
                try c.qos(prefetch: prefetch)
                try waitWhileHeld(on: c, standingBy: &standingBy)
                if stopFlag.isStopped {
                    c.close()
                    break
                }
                for (queue, tag) in handler.queues {
                    try c.consume(queue, exclusive: handler.exclusive, consumerTag: tag)
                }
                logger.info(
                    connectedOnce ? "reconnected and consuming" : "consuming",
                    metadata: ["sb.role": "\(name)", "amqp.server": "\(c.options.redacted)", "sb.queues": "\(handler.queues.count)"])
                if connectedOnce { Meters.count("switchboard_broker_reconnects_total", [("role", role)]) }
                Meters.gauge("switchboard_broker_connected", [("loop", name)], 1)
                health.set(name, ready: true, "consuming \(handler.queues.count) queue(s)")
                connectedOnce = true
                standingBy = false
                backoff = 0.2
                try consume(on: c)
                for (_, tag) in handler.queues { try? c.cancel(consumerTag: tag) }
                c.close()
            } catch let e as GiveBack {
                connection?.close()
                Meters.gauge("switchboard_broker_connected", [("loop", name)], 0)
                health.set(name, ready: false, "a batch failed; reconnecting: \(e.reason)")
                givenBack += 1
                let pause = min(15, pow(2, Double(min(givenBack, 5) - 1)))
                logger.error(
                    "batch failed; everything unacked goes back to the queues",
                    metadata: ["sb.role": "\(name)", "sb.error": "\(e.reason)", "sb.retry-in": "\(Int(pause))s"])
                sleep(seconds: pause)
            } catch let e as AMQPError where e.replyCode == 403 && handler.exclusive {
                // Another process holds one of our queues exclusively (a partition's worker, the active
                // intake, the SQLite store): wait as a standby and take over within a second of it leaving.
                connection?.close()
                Meters.gauge("switchboard_broker_connected", [("loop", name)], 0)
                if stopFlag.isStopped { break }
                standBy(&standingBy, ["sb.error": "\(e)"])
            } catch {
                connection?.close()
                Meters.gauge("switchboard_broker_connected", [("loop", name)], 0)
                if stopFlag.isStopped { break }
                health.set(name, ready: false, "no broker connection: \(error)")
                logger.error(
                    "broker connection failed; retrying",
                    metadata: ["sb.role": "\(name)", "sb.error": "\(error)", "sb.retry-in": "\(backoff)s"])
                sleep(seconds: backoff)
                backoff = min(backoff * 2, 5)
            }
        }
        logger.info("stopped", metadata: ["sb.role": "\(name)"])
    }

    /// An exclusive loop whose queue another process consumes (a partition's worker, the active intake, the
    /// SQLite store) waits on its open connection, asking the queue's consumer count once a second, and
    /// consumes once it is free: trying and being refused every second cost a connection a second and an
    /// error in the broker's log each time. (Two standbys that see the queue free at once: one is refused,
    /// and waits below as before.)
    private func waitWhileHeld(on c: Connection, standingBy: inout Bool) throws {
        guard handler.exclusive else { return }
        while !stopFlag.isStopped {
            guard let held = try handler.queues.first(where: { try c.queueDepth($0.queue).consumers > 0 }) else { return }
            Meters.gauge("switchboard_broker_connected", [("loop", name)], 1)
            standBy(&standingBy, ["sb.queue": "\(held.queue)"])
        }
    }

    /// A standby does what it should: wait (a second). Ready, so a rolling deployment goes on; said once.
    private func standBy(_ standingBy: inout Bool, _ metadata: Logger.Metadata) {
        health.set(name, ready: true, "standing by: another process consumes its queue exclusively")
        if !standingBy {
            logger.notice(
                "standing by: another process consumes the queue exclusively; taking over when it stops",
                metadata: metadata.merging(["sb.role": "\(name)"]) { a, _ in a })
            standingBy = true
        }
        sleep(seconds: 1)
    }

    /// A batch that could not be processed. Everything this connection holds unacked goes back to the
    /// queues by closing it: nacking only the batch would let the prefetched messages behind it (the
    /// same tickets' later updates) overtake it. Then reconnect after a pause.
    private struct GiveBack: Error, CustomStringConvertible {
        var reason: String
        var description: String { reason }
    }

    /// A batch whose outgoing messages are published and not yet known to be confirmed.
    private struct Published {
        var batch: [Delivery]
        /// The publish sequence number of its last outgoing message (or of the last one before it).
        var through: UInt64
    }

    /// While the broker confirms one batch's messages, the next batch is already handled and published
    /// (if it has arrived): the confirm round trip overlaps with work instead of adding to it. A batch is
    /// acked, as before, only once everything published up to its last message is confirmed.
    private func consume(on c: Connection) throws {
        var inFlight: Published?
        while !stopFlag.isStopped {
            health.tick(name)
            // With a batch awaiting its confirms, take only what has arrived already.
            guard let first = try c.nextDelivery(timeout: inFlight == nil ? 0.25 : 0) else {
                if let earlier = inFlight {
                    try settle(earlier, on: c)
                    inFlight = nil
                }
                continue
            }
            var batch = [first]
            while batch.count < batchSize, let d = try c.nextDelivery(timeout: 0) { batch.append(d) }
            let published = try publish(batch, on: c)
            if let earlier = inFlight { try settle(earlier, on: c) }
            inFlight = published
        }
        if let earlier = inFlight { try settle(earlier, on: c) }
    }

    private func publish(_ batch: [Delivery], on c: Connection) throws -> Published {
        let outgoing: [Outgoing]
        do {
            outgoing = try Meters.time("switchboard_batch_duration_seconds", [("role", role)]) { try handler.handle(batch) }
            Meters.value("switchboard_batch_messages", [("role", role)], batch.count)
        } catch {
            // Not the messages' fault (store unavailable, ...): give them back and slow down.
            throw GiveBack(reason: "batch of \(batch.count) failed: \(error)")
        }
        try c.corked { () throws(AMQPError) in
            for o in outgoing {
                try c.publish(exchange: o.exchange, routingKey: o.routingKey, message: o.message(as: options.user), mandatory: o.mandatory)
            }
        }
        return Published(batch: batch, through: c.lastPublished)
    }

    private func settle(_ p: Published, on c: Connection) throws {
        var outcome = try c.waitForConfirms(through: p.through, timeout: confirmTimeout) { stopFlag.isStopped }
        if !outcome.returned.isEmpty {
            // Unroutable (no queue bound): the broker "confirms" it anyway; park it so nothing is lost.
            // (It may be a message of the next batch already; parking it early does no harm.)
            for r in outcome.returned {
                logger.error(
                    "unroutable message parked",
                    metadata: ["sb.role": "\(name)", "sb.exchange": "\(r.exchange)", "sb.routing-key": "\(r.routingKey)",
                               "sb.message-id": "\(r.message.properties.messageId ?? "")"])
                let parked = Parking.park(
                    body: r.message.body, original: Original.of(r.message, exchange: r.exchange, routingKey: r.routingKey),
                    code: "unroutable",
                    reason: "unroutable: no queue is bound to exchange '\(r.exchange)' for routing key '\(r.routingKey)' (\(r.replyText))",
                    stage: role, endpoint: nil)
                try c.publish(exchange: parked.exchange, routingKey: parked.routingKey, message: parked.message(as: options.user))
            }
            let parking = try c.waitForConfirms(timeout: confirmTimeout) { stopFlag.isStopped }
            outcome.nacked += parking.nacked
            guard parking.returned.isEmpty else {
                throw GiveBack(reason: "the parked-message queue took no message (\(parking.returned.count) returned)")
            }
        }
        guard outcome.nacked.isEmpty else {
            // The broker could not take them (e.g. a full queue): requeue the inputs and try again later.
            throw GiveBack(reason: "the broker refused \(outcome.nacked.count) outgoing message(s)")
        }
        try c.ack(p.batch[p.batch.count - 1], multiple: true)
        givenBack = 0
        handler.confirmed(p.batch)
    }

    /// Sleeps in short steps so a stop request is honoured quickly.
    private func sleep(seconds: TimeInterval) {
        let end = Date().addingTimeInterval(seconds)
        while !stopFlag.isStopped, Date() < end {
            health.tick(name)
            Thread.sleep(forTimeInterval: min(0.05, seconds))
        }
    }
}
