import AMQP
import Foundation
import Logging
import Roles
import Telemetry

/// The ingress's one broker connection, on a thread of its own (rabbitmq-c blocks): request handlers hand
/// it a message and await the broker's confirm, never blocking an event loop. Whatever is waiting when the
/// thread comes round is published as one batch (corked) and confirmed together, so many concurrent
/// requests cost one confirm wait. While it has no connection, a handler is answered at once ("unavailable"),
/// never queued behind a broker that does not answer.
final class ConfirmingPublisher: @unchecked Sendable {
    enum Result: Sendable, Equatable {
        case confirmed
        case unavailable(String)
    }

    private struct Job {
        var outgoing: Outgoing
        var done: CheckedContinuation<Result, Never>
    }

    private let options: ConnectionOptions
    private let confirmTimeout: TimeInterval
    private let logger: Logger
    /// Guards `jobs`, `up` and `why`; signalled when a job arrives or the loop stops.
    private let condition = NSCondition()
    private var jobs: [Job] = []
    private var up = false
    private var why = "not connected to the broker yet"
    private var stopped = false
    /// The most messages one batch publishes before it waits for their confirms.
    static let maxBatch = 512

    init(options: ConnectionOptions, confirmTimeout: TimeInterval, logger: Logger) {
        self.options = options
        self.confirmTimeout = confirmTimeout
        self.logger = logger
    }

    /// The broker user it publishes as (the messages' user_id, which the broker checks).
    var user: String { options.user }

    /// Publishes `outgoing` and returns once the broker confirmed it (or why it could not).
    func publish(_ outgoing: Outgoing) async -> Result {
        await withCheckedContinuation { (done: CheckedContinuation<Result, Never>) in
            condition.lock()
            guard up, !stopped else {
                let reason = why
                condition.unlock()
                done.resume(returning: .unavailable(reason))
                return
            }
            jobs.append(Job(outgoing: outgoing, done: done))
            condition.signal()
            condition.unlock()
        }
    }

    /// Connected and confirming (what readiness reports).
    var isUp: Bool {
        condition.lock()
        defer { condition.unlock() }
        return up
    }

    /// The loop: connect, publish what waits, confirm, answer; reconnect after a failure (1 s, doubling to 15 s).
    func run(stop: StopFlag) {
        var backoff: TimeInterval = 1
        while !stop.isStopped {
            var connection: Connection?
            do {
                var o = options
                o.connectionName = "switchboard ingress"
                let c = try Connection(o, logger: logger)
                connection = c
                try c.enableConfirms()
                setUp(true, why: "")
                Readiness.shared.set("ingress-broker", ready: true, "publishing to \(Contract.inboundExchange) as '\(options.user)'")
                logger.info("ingress: connected to the broker", metadata: ["sb.user": "\(options.user)"])
                backoff = 1
                try serve(c, stop: stop)
            } catch {
                let reason = "the broker is unavailable: \(error)"
                setUp(false, why: reason)
                Readiness.shared.set("ingress-broker", ready: false, reason)
                logger.warning("ingress: broker connection lost; requests are answered 503 until it is back", metadata: ["sb.error": "\(error)"])
                fail(takeAll(), reason)
            }
            connection?.close()
            if stop.isStopped { break }
            _ = stop.wait(until: Date().addingTimeInterval(backoff))
            backoff = min(backoff * 2, 15)
        }
        condition.lock()
        stopped = true
        up = false
        condition.unlock()
        fail(takeAll(), "the ingress is stopping")
    }

    /// Wakes the loop so it sees the stop.
    func wake() {
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }

    private func serve(_ c: Connection, stop: StopFlag) throws {
        while !stop.isStopped {
            let batch = take(waiting: 0.5)
            if batch.isEmpty {
                // Heartbeats and the broker's notices (connection.blocked) are read here.
                try c.idle(until: Date())
                continue
            }
            var seqs: [UInt64] = []
            do {
                try c.corked { () throws(AMQPError) in
                    for job in batch {
                        seqs.append(try c.publish(
                            exchange: job.outgoing.exchange, routingKey: job.outgoing.routingKey,
                            message: job.outgoing.message, mandatory: job.outgoing.mandatory))
                    }
                }
                let outcome = try c.waitForConfirms(timeout: confirmTimeout) { stop.isStopped }
                let nacked = Set(outcome.nacked)
                let returned = Set(outcome.returned.compactMap(\.message.properties.headers[Contract.Header.ingressId]?.description))
                for (job, seq) in zip(batch, seqs) {
                    if nacked.contains(seq) {
                        job.done.resume(returning: .unavailable("the broker refused the message (basic.nack)"))
                    } else if let id = job.outgoing.message.properties.headers[Contract.Header.ingressId]?.description, returned.contains(id) {
                        job.done.resume(returning: .unavailable("no queue took the message (the broker returned it)"))
                    } else {
                        job.done.resume(returning: .confirmed)
                    }
                }
            } catch {
                fail(batch, "the broker did not confirm: \(error)")
                throw error
            }
        }
    }

    private func take(waiting: TimeInterval) -> [Job] {
        condition.lock()
        defer { condition.unlock() }
        if jobs.isEmpty { _ = condition.wait(until: Date().addingTimeInterval(waiting)) }
        let n = min(jobs.count, Self.maxBatch)
        let batch = Array(jobs.prefix(n))
        jobs.removeFirst(n)
        return batch
    }

    private func takeAll() -> [Job] {
        condition.lock()
        defer { condition.unlock() }
        let all = jobs
        jobs = []
        return all
    }

    private func setUp(_ isUp: Bool, why: String) {
        condition.lock()
        up = isUp
        self.why = why
        condition.unlock()
    }

    private func fail(_ batch: [Job], _ reason: String) {
        for job in batch { job.done.resume(returning: .unavailable(reason)) }
    }
}
