import AMQP
import Foundation
import Logging
import Rules
import Synchronization
import Telemetry

// One file (about 420 lines), on purpose: the consume-publish-confirm-ack cycle and its reconnects share
// the loop's private bookkeeping (the batch awaiting confirms, the connection's generation); the handler's
// side is BatchHandler.swift.

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
    /// Batches given back in a row (a lost connection): the pause before the next attempt doubles from
    /// 1 s up to 15 s. Store and broker trouble on a live connection gives nothing back: the batch is held
    /// and tried again in place (`publish`, `settle`), because every return counts toward a quorum queue's
    /// delivery limit, whatever its cause, and an outage must not park valid work.
    private var givenBack = 0
    /// Every message this connection published that is not settled yet, in publish order: `sent[i]` has
    /// the sequence number `sentBase + i` (every publish of the loop goes through `send`). What the broker
    /// refuses (basic.nack, e.g. a full queue that rejects publishes) is found here and published again.
    private var sent: [Outgoing] = []
    private var sentBase: UInt64 = 1

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
        logger: Logger, health: Readiness = .shared, prefetch: Int? = nil
    ) {
        self.init(
            name: name, options: options, topology: Topology(config: config), prefetch: prefetch ?? config.settings.prefetch,
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
                sent = []
                try topology.declare(on: c)
                try c.enableConfirms()
                try c.qos(prefetch: prefetch)
                try waitWhileHeld(on: c, standingBy: &standingBy)
                try lock(on: c)
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
                health.set(name, ready: true, consumingDetail)
                connectedOnce = true
                standingBy = false
                backoff = 0.2
                try consume(on: c)
                // A loop that consumes alone closes without cancelling first: its consumer then goes in
                // the same step of the queue as the messages it still held come back (what the next
                // holder of the lock waits for, see `lock`); cancelled first, the queue would show no
                // consumer while those are still out.
                if !handler.exclusive {
                    for (_, tag) in handler.queues { try? c.cancel(consumerTag: tag) }
                }
                c.close()
            } catch let e as GiveBack {
                connection?.close()
                Meters.gauge("switchboard_broker_connected", [("loop", name)], 0)
                health.set(name, ready: false, "a batch failed; reconnecting: \(e.reason)")
                givenBack += 1
                let pause = Self.pause(after: givenBack)
                logger.error(
                    "batch failed; everything unacked goes back to the queues",
                    metadata: ["sb.role": "\(name)", "sb.error": "\(e.reason)", "sb.retry-in": "\(Int(pause))s"])
                sleep(seconds: pause)
            } catch let e as AMQPError where (e.replyCode == 403 || e.replyCode == 405) && handler.exclusive {
                // Another process holds one of our queues exclusively (a partition's worker, the active
                // intake, the SQLite store), or its lock (405): wait as a standby and take over within a
                // second of it leaving.
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
    /// error in the broker's log each time. (Two standbys that see the queue free at once: one gets the
    /// lock, the other is refused it and waits as before; see `lock`.)
    private func waitWhileHeld(on c: Connection, standingBy: inout Bool) throws {
        guard handler.exclusive else { return }
        while !stopFlag.isStopped {
            guard let held = try handler.queues.first(where: { try c.queueDepth($0.queue).consumers > 0 }) else { return }
            Meters.gauge("switchboard_broker_connected", [("loop", name)], 1)
            standBy(&standingBy, ["sb.queue": "\(held.queue)"])
        }
    }

    /// The broker's lock on the queues this loop consumes alone. A quorum queue ignores `exclusive`, and
    /// its single active consumer lets a second consumer register and wait, unseen by the consumer count
    /// (queue.declare-ok counts the active one only; measured on 3.10.8). A waiting consumer is harmless
    /// until the active one dies holding unacked messages: it then receives the later ready messages
    /// before the returned ones (measured on 3.10.8), and a ticket's order is lost. Two loops that find a
    /// queue free at the same moment would both consume it. So a loop first declares `sb.lock.<queue>`
    /// exclusive: the broker gives such a queue to one connection only (405 RESOURCE_LOCKED to any
    /// other, on every queue type and version) and deletes it when that connection closes or dies. Then it
    /// waits, holding the lock, until the queue has no consumer (the previous holder's consumer gone, and
    /// with it its unacked messages returned), and only then consumes: no Switchboard consumer ever waits
    /// registered behind another. Single active consumer stays as the fence against anything else.
    private func lock(on c: Connection) throws {
        guard handler.exclusive else { return }
        for (queue, _) in handler.queues {
            _ = try c.declareQueue(Contract.lockPrefix + queue, durable: false, exclusive: true)
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
            let published = try publish(batch, on: c, settling: &inFlight)
            if let earlier = inFlight { try settle(earlier, on: c) }
            inFlight = published
        }
        if let earlier = inFlight { try settle(earlier, on: c) }
    }

    /// Handles a batch and publishes what it caused. When the handler fails (not the messages' fault: the
    /// store is unavailable or answers too late), the batch is held on this connection and tried again
    /// after a pause (1 s doubling to 15 s) for as long as it takes: nothing goes back to the queue, so
    /// no outage counts toward the delivery limit. `earlier` (a batch awaiting its confirms) is settled
    /// before the first pause. Only a stop or a lost connection gives the batch back.
    private func publish(_ delivered: [Delivery], on c: Connection, settling earlier: inout Published?) throws -> Published {
        var batch = delivered
        var held = 0
        while true {
            let outgoing: [Outgoing]
            do {
                outgoing = try Meters.time("switchboard_batch_duration_seconds", [("role", role)]) { try handler.handle(batch) }
                Meters.value("switchboard_batch_messages", [("role", role)], batch.count)
            } catch {
                if let e = earlier {
                    try settle(e, on: c)
                    earlier = nil
                }
                guard !stopFlag.isStopped else { throw GiveBack(reason: "stopping while holding a batch of \(batch.count): \(error)") }
                held += 1
                let pause = Self.pause(after: held)
                Meters.count("switchboard_batches_held_total", [("role", role), ("cause", "handler")])
                health.set(name, ready: false, "holding a batch of \(batch.count) (attempt \(held) failed: \(error)); trying again in \(Int(pause)) s")
                logger.error(
                    "batch failed; holding it and trying again (nothing goes back to the queue)",
                    metadata: ["sb.role": "\(name)", "sb.error": "\(error)", "sb.attempt": "\(held)", "sb.retry-in": "\(Int(pause))s"])
                try idle(on: c, seconds: pause)
                // The failed attempt may have committed (a reply lost on the way): what it stored is sent
                // again, never decided twice, as for a redelivery.
                batch = batch.map { d in
                    var again = d
                    again.redelivered = true
                    return again
                }
                continue
            }
            if held > 0 {
                logger.notice("held batch processed", metadata: ["sb.role": "\(name)", "sb.attempts": "\(held + 1)"])
                health.set(name, ready: true, consumingDetail)
            }
            try c.corked { () throws(AMQPError) in
                for o in outgoing { try send(o, on: c) }
            }
            return Published(batch: batch, through: c.lastPublished)
        }
    }

    private func send(_ o: Outgoing, on c: Connection) throws(AMQPError) {
        let seq = try c.publish(exchange: o.exchange, routingKey: o.routingKey, message: o.message(as: options.user), mandatory: o.mandatory)
        if sent.isEmpty { sentBase = seq }
        sent.append(o)
    }

    /// The unsettled message published with sequence number `seq`.
    private func sentMessage(_ seq: UInt64) -> Outgoing? {
        guard seq >= sentBase, seq - sentBase < UInt64(sent.count) else { return nil }
        return sent[Int(seq - sentBase)]
    }

    /// 1 s after the first failure in a row, doubling up to 15 s.
    private static func pause(after failures: Int) -> TimeInterval {
        min(15, pow(2, Double(min(failures, 5) - 1)))
    }

    private var consumingDetail: String { "consuming \(handler.queues.count) queue(s)" }

    /// Keeps the connection (heartbeats, deliveries buffered in order) for `seconds`, or until a stop.
    private func idle(on c: Connection, seconds: TimeInterval) throws {
        let end = Date().addingTimeInterval(seconds)
        while !stopFlag.isStopped, Date() < end {
            health.tick(name)
            try c.idle(until: min(end, Date().addingTimeInterval(0.25)))
        }
    }

    /// The broker's confirms up to `seq`. A broker that takes longer than `confirmTimeout` (a quorum queue
    /// without a leader, a slow disk) is waited for on the live connection, said once per timeout; giving
    /// the batch back would only deliver it again toward the delivery limit. A stop ends the wait.
    private func confirms(through seq: UInt64, on c: Connection) throws -> ConfirmOutcome {
        var waited = 0
        while true {
            // Through a Result: `catch ... where` on this typed throw crashed the Swift 6 compiler.
            let result: Result<ConfirmOutcome, AMQPError>
            do {
                result = .success(try c.waitForConfirms(through: seq, timeout: confirmTimeout) { stopFlag.isStopped })
            } catch {
                result = .failure(error)
            }
            switch result {
            case .success(let outcome):
                if waited > 0 { health.set(name, ready: true, consumingDetail) }
                return outcome
            case .failure(let error) where error.code != .timeout || stopFlag.isStopped:
                throw error
            case .failure(let error):
                waited += 1
                Meters.count("switchboard_batches_held_total", [("role", role), ("cause", "confirm_timeout")])
                health.set(name, ready: false, "the broker has not confirmed this batch's messages for \(Int(confirmTimeout) * waited) s; waiting")
                logger.error(
                    "the broker has not confirmed a batch's messages; holding the batch and waiting on",
                    metadata: ["sb.role": "\(name)", "sb.error": "\(error)", "sb.waited": "\(Int(confirmTimeout) * waited)s"])
            }
        }
    }

    /// Waits for a batch's confirms, parks what came back unroutable, publishes again what the broker
    /// refused (after a pause, holding the batch, for as long as it refuses), then acks the batch.
    private func settle(_ p: Published, on c: Connection) throws {
        var through = p.through
        var outcome = try confirms(through: through, on: c)
        var refusals = 0
        while !outcome.allConfirmed {
            if !outcome.nacked.isEmpty, c.lastPublished > through {
                // The next batch is in flight: settle it too, so the refused ones go out on a settled channel.
                let rest = try confirms(through: c.lastPublished, on: c)
                through = c.lastPublished
                outcome.nacked += rest.nacked
                outcome.returned += rest.returned
            }
            if !outcome.nacked.isEmpty {
                // The broker could not take them (a queue at its length limit that rejects publishes, a
                // queue without a quorum): publish them again after a pause, as long as it takes.
                guard !stopFlag.isStopped else {
                    throw GiveBack(reason: "stopping with \(outcome.nacked.count) outgoing message(s) refused by the broker")
                }
                refusals += 1
                let pause = Self.pause(after: refusals)
                let queues = Set(outcome.nacked.compactMap { sentMessage($0).map { "\($0.exchange)/\($0.routingKey)" } }).sorted()
                Meters.count("switchboard_batches_held_total", [("role", role), ("cause", "refused")])
                health.set(name, ready: false, "the broker refused \(outcome.nacked.count) outgoing message(s) to \(queues.joined(separator: ", ")); publishing them again in \(Int(pause)) s")
                logger.error(
                    "the broker refused outgoing messages; holding the batch and publishing them again",
                    metadata: ["sb.role": "\(name)", "sb.refused": "\(outcome.nacked.count)", "sb.to": "\(queues.joined(separator: ", "))",
                               "sb.attempt": "\(refusals)", "sb.retry-in": "\(Int(pause))s"])
                try idle(on: c, seconds: pause)
                // On a fresh channel: a quorum queue may go on refusing the channel it refused
                // (`renewPublishChannel`). Everything published is settled by now (above).
                try c.renewPublishChannel()
                for seq in outcome.nacked.sorted() {
                    if let o = sentMessage(seq) { try send(o, on: c) }
                }
            }
            // Unroutable (no queue bound): the broker "confirms" it anyway; park it so nothing is lost.
            // (It may be a message of the next batch already; parking it early does no harm.)
            for r in outcome.returned {
                if r.exchange.isEmpty && r.routingKey == Contract.parkedQueue {
                    throw GiveBack(reason: "the parked-message queue '\(Contract.parkedQueue)' took no message: it does not exist")
                }
                logger.error(
                    "unroutable message parked",
                    metadata: ["sb.role": "\(name)", "sb.exchange": "\(r.exchange)", "sb.routing-key": "\(r.routingKey)",
                               "sb.message-id": "\(r.message.properties.messageId ?? "")"])
                let parked = Parking.park(
                    body: r.message.body, original: Original.of(r.message, exchange: r.exchange, routingKey: r.routingKey),
                    code: "unroutable",
                    reason: "unroutable: no queue is bound to exchange '\(r.exchange)' for routing key '\(r.routingKey)' (\(r.replyText))",
                    stage: role, endpoint: nil)
                try send(parked, on: c)
            }
            through = c.lastPublished
            outcome = try confirms(through: through, on: c)
        }
        if refusals > 0 {
            logger.notice("refused messages taken by the broker", metadata: ["sb.role": "\(name)", "sb.attempts": "\(refusals + 1)"])
            health.set(name, ready: true, consumingDetail)
        }
        // Settled up to `through`: the refused ones were published again under later numbers.
        let settled = through >= sentBase ? min(sent.count, Int(through - sentBase + 1)) : 0
        sent.removeFirst(settled)
        sentBase += UInt64(settled)
        try c.ack(p.batch[p.batch.count - 1], multiple: true)
        givenBack = 0
        handler.confirmed(p.batch)
    }

    /// Waits until `seconds` passed or a stop is asked for, telling the liveness probe every 50 ms.
    private func sleep(seconds: TimeInterval) {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            health.tick(name)
            if stopFlag.wait(until: min(end, Date().addingTimeInterval(0.05))) { return }
        }
    }
}
