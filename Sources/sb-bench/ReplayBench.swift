import AMQP
import Foundation
import JSONPath
import Logging
import Roles
import Rules
import Store
import Synchronization
import Wiring

/// `sb-bench --shape replay`: how fast `switchboard rules replay` re-runs recorded history. First a SQLite
/// store records `messages` decided messages through the real intake routing and worker (no broker, a
/// simulated clock): creates, the vendor's acks with its keys, updates, LOCKED refusals that the retry
/// policy sends again a minute later, and their acks. Then the replay reads and re-runs every recorded
/// conversation against the same configuration on one thread, the way the command does, and must find
/// no difference. Reported: messages replayed per second and CPU seconds (the issue's bar: 100,000 in under
/// 60 s on one core).
enum ReplayBench {
    static func measure(messages: Int, conversations: Int, config directory: String) async throws {
        let logger = Logger(label: "sb-bench")
        let (config, store, dataDir) = try EngineBench.scratchStore(directory, logger: logger)
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        let clock = Mutex(RuleTestRunner.epoch)
        let intake = IntakeHandler(config: config, logger: logger)
        let worker = WorkerHandler(
            config: config, store: store, partitions: Array(0..<config.settings.partitions), logger: logger,
            clock: { clock.withLock { $0 } })
        func advance(_ seconds: Double) { clock.withLock { $0 = $0.addingTimeInterval(seconds) } }

        var recorded = 0
        var seq = 0
        /// Delivers ESB messages through intake to the worker, in batches of 100; what the worker sent.
        func deliver(_ inbound: [(endpoint: String, body: JSON, type: String?, correlation: String?)]) throws -> [Outgoing] {
            var out: [Outgoing] = []
            for start in stride(from: 0, to: inbound.count, by: 100) {
                var bodies: [JSON?] = []
                let batch = inbound[start..<min(inbound.count, start + 100)].map { m -> Delivery in
                    seq += 1
                    let d = Delivery(
                        deliveryTag: UInt64(seq), redelivered: false, exchange: "sb.in", routingKey: m.endpoint, consumerTag: "sb-intake:\(m.endpoint)",
                        message: Message(
                            body: Data(m.body.serializedString.utf8),
                            properties: Properties(contentType: "application/json", messageId: "r-\(seq)", correlationId: m.correlation, type: m.type)),
                        generation: 1)
                    var body: JSON?
                    let routed = intake.route(d, body: &body)
                    bodies.append(body)
                    return Delivery(
                        deliveryTag: d.deliveryTag, redelivered: false, exchange: routed.exchange, routingKey: routed.routingKey,
                        consumerTag: "sb-worker:\(routed.routingKey)", message: routed.message, generation: 1)
                }
                out += try worker.handle(batch, bodies: bodies)
                recorded += batch.count
            }
            return out
        }
        /// Timers come due: their messages reach the worker as the delay queue dead-letters them.
        func fire(_ timers: [Outgoing]) throws -> [Outgoing] {
            var out: [Outgoing] = []
            for start in stride(from: 0, to: timers.count, by: 100) {
                let batch = timers[start..<min(timers.count, start + 100)].map { t -> Delivery in
                    seq += 1
                    return Delivery(
                        deliveryTag: UInt64(seq), redelivered: false, exchange: t.exchange, routingKey: t.routingKey,
                        consumerTag: "sb-worker:\(t.routingKey)", message: t.message, generation: 1)
                }
                out += try worker.handle(batch)
                // A bucket (TimerBuckets) is one delivery of several timers, each a message of the history.
                recorded += batch.reduce(0) { $0 + TimerBuckets.timers(in: $1.message) }
            }
            return out
        }
        func toVendor(_ out: [Outgoing]) -> [Outgoing] { out.filter { $0.exchange == Contract.outboundExchange && $0.routingKey == "vendor-x" } }
        func timers(_ out: [Outgoing]) -> [Outgoing] { out.filter { $0.exchange.hasPrefix("sb.delay.work.") } }
        /// The vendor's ESB answers: ok with its key, or every `lockedEvery`th update LOCKED.
        func answers(_ sent: [Outgoing], lockedEvery: Int) -> [(endpoint: String, body: JSON, type: String?, correlation: String?)] {
            sent.enumerated().map { n, o in
                let number = (try? JSON.parse(o.message.body))?["customer_reference"]?.stringValue ?? "?"
                let locked = lockedEvery > 0 && o.message.properties.type == "update" && n % lockedEvery == 0
                let body: JSON = locked
                    ? ["status": "error", "code": "LOCKED", "message": "open on a technician's screen"]
                    : ["status": "ok", "key": .string("VX-" + number.dropFirst(3))]
                return ("vendor-x", body, "ack", o.message.properties.messageId)
            }
        }
        func customer(_ n: Int, round: Int) -> (endpoint: String, body: JSON, type: String?, correlation: String?) {
            var fields: [String: JSON] = [
                "number": .string(String(format: "INC%07d", n)), "short_description": .string("Orders fail (\(round))"),
                "description": "The SAP gateway answers 502", "priority": .string(String(1 + (n + round) % 5)), "sys_updated_by": "bench",
            ]
            if round == 0 { fields["assignment_group"] = ["value": "g-sap", "display_value": "SAP Support"] }
            return ("customer-a", .object(fields), nil, nil)
        }

        let recordStarted = nanos()
        var round = 0
        while recorded < messages {
            let sent = toVendor(try deliver((0..<conversations).map { customer($0, round: round) }))
            advance(1)
            let out = try deliver(answers(sent, lockedEvery: round == 0 ? 0 : 4))
            advance(61)
            let again = toVendor(try fire(timers(out)))
            advance(1)
            _ = try deliver(answers(again, lockedEvery: 0))
            advance(600)
            round += 1
        }
        say(String(
            format: "replay: recorded %d messages over %d conversations (%d rounds of update, ack, LOCKED sent again) in %.1f s",
            recorded, conversations, round, Double(nanos() - recordStarted) / 1e9))

        let listStarted = nanos()
        let ids = try await store.conversationIds(changedSince: nil)
        let listed = Double(nanos() - listStarted) / 1e9
        let cpu = EngineBench.cpuSeconds()
        let started = nanos()
        let report = try await Stores.replay(store, ids: ids, candidate: config)
        let seconds = Double(nanos() - started) / 1e9
        let cpuUsed = EngineBench.cpuSeconds() - cpu
        guard report.differing.isEmpty, report.notReplayable.isEmpty, report.messages == recorded else {
            throw EngineBench.EngineBenchError(description:
                "replay of the recorded traffic: \(report.messages) of \(recorded) messages, \(report.differing.count) differ "
                + "(\(report.differing.first.map { "\($0.conversation): \($0.differences.prefix(2))" } ?? "")), \(report.notReplayable.count) not replayable")
        }
        say(String(
            format: "replay: %d messages of %d conversations replayed with 0 differences in %.2f s: %.0f msg/s, CPU %.2f s (one thread; listing them took %.2f s)",
            report.messages, report.replayed, seconds, Double(report.messages) / seconds, cpuUsed, listed))
    }
}
