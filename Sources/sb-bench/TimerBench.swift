import AMQP
import Foundation
import JSONPath
import Logging

/// `--shape timers`: timer lateness at scale. `switchboard run` on the configuration plus two rules: every
/// message with `bench_timer` starts a timer of `delay` seconds on its (new) conversation, and the timer's
/// rule sends a message with the time the ESB published the original. The ESB publishes `timers` such
/// messages at `rate` per second, so `timers` are pending at once and they come due at `rate` per second;
/// lateness = arrival at the sink - (publish + delay): the pipeline's own latency at intake, plus what the
/// timer path adds when they come due.
enum TimerBench {
    static func rules(delaySeconds: Int) -> String {
        """
        rules:
          - name: bench-timer-start
            priority: 100000
            from: customer-a
            when: {field: $.bench_timer, exists: true}
            stop: true
            set:
              - attribute: bench_sent
                value: {field: $.bench_sent}
            schedule:
              - timer: bench-due
                after: \(delaySeconds)s
          - name: bench-timer-fire
            timer: bench-due
            send:
              - to: vendor-x
                type: bench-timer
                body: {sent: {attribute: bench_sent}}

        """
    }

    static func measure(
        options: ConnectionOptions, url: String, binary: String, config directory: String, timers: Int, rate: Double,
        delaySeconds: Int, partitions: Int, workers: Int, logger: Logger
    ) throws {
        let dir = NSTemporaryDirectory() + "sb-timer-bench-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = dir + "/Config"
        try FileManager.default.createDirectory(atPath: config, withIntermediateDirectories: true)
        for name in try FileManager.default.contentsOfDirectory(atPath: directory) where name.hasSuffix(".yaml") {
            try FileManager.default.copyItem(atPath: directory + "/" + name, toPath: config + "/" + name)
        }
        try rules(delaySeconds: delaySeconds).write(toFile: config + "/zz-bench-timers.yaml", atomically: true, encoding: .utf8)
        let process = try SwitchboardProcess(
            binary: binary, args: ["run"], config: config, url: url, dataDir: dir + "/data", partitions: partitions, workers: workers)
        defer { process.stop() }
        try SwitchboardProcess.waitUntilConsuming(options: options, logger: logger)
        say("bench: \(timers) timers of \(delaySeconds) s started at \(Int(rate))/s (so \(timers) pending at once, coming due at \(Int(rate))/s)")

        // Nothing arrives for `delay` seconds after the first publish: the sink waits that long and more.
        let delayNanos = UInt64(delaySeconds) * 1_000_000_000
        let byDue = Lateness()
        let sink = Sink(queue: "sb.out.vendor-x", expected: timers, options: options, logger: logger, patience: Double(delaySeconds) + 60) { d, now in
            guard d.message.properties.type == "bench-timer", let id = d.message.properties.messageId,
                case .object(let o)? = try? JSON.parse(d.message.body), let sent = o["sent"]?.stringValue.flatMap({ UInt64($0) })
            else { return nil }
            let ms = (Double(now) - Double(sent + delayNanos)) / 1e6
            byDue.add(due: sent + delayNanos, ms: ms)
            return (id, ms)
        }
        try sink.start()
        let brokerBegin = SwitchboardProcess.brokerCPU()
        let begin = nanos()
        let c = try Connection(options, logger: logger)
        defer { c.close() }
        try c.enableConfirms()
        for seq in 0..<timers {
            pace(seq: seq, rate: rate, since: begin)
            let text = #"{"number":"TMR\#(String(format: "%07d", seq))","bench_timer":true,"bench_sent":"\#(nanos())","short_description":"timer bench","sys_updated_by":"bench"}"#
            try c.publish(
                exchange: "sb.in", routingKey: "customer-a",
                message: Message(body: Data(text.utf8), properties: Properties(contentType: "application/json", messageId: "tmr-\(seq)")))
            if seq % 200 == 199 { _ = try c.waitForConfirms(timeout: 30) }
        }
        _ = try c.waitForConfirms(timeout: 30)
        let published = Double(nanos() - begin) / 1e9
        say(String(format: "bench: published %d in %.1f s (%.0f/s)", timers, published, Double(timers) / published))
        // The start phase ends when the inbound queue is empty (every start committed, its timer published):
        // whether the intake kept up with the rate, and what starting costs apart from firing.
        var left = try c.queueDepth("sb.in.customer-a").messages
        while left > 0, nanos() - begin < delayNanos {
            Thread.sleep(forTimeInterval: 0.05)
            left = try c.queueDepth("sb.in.customer-a").messages
        }
        let started = Double(nanos() - begin) / 1e9
        let startCPU = process.usage().cpuSeconds, startBroker = SwitchboardProcess.brokerCPU()
        say((left == 0
                ? String(format: "bench: every timer started %.1f s after the first publish (%.0f/s)", started, Double(timers) / started)
                : String(format: "bench: %d starts still waiting when the first timer came due (%.1f s): the phases below overlap", left, started))
            + String(format: "; CPU per 1000 timers started: switchboard %.3f s", startCPU / Double(timers) * 1000)
            + (startBroker.flatMap { a in brokerBegin.map { String(format: ", broker %.3f s", (a - $0) / Double(timers) * 1000) } } ?? ""))
        let lateness = try sink.wait()
        let fireCPU = process.usage().cpuSeconds - startCPU, fireBroker = SwitchboardProcess.brokerCPU()
        say(String(format: "bench: CPU per 1000 timers fired: switchboard %.3f s", fireCPU / Double(timers) * 1000)
            + (fireBroker.flatMap { a in startBroker.map { String(format: ", broker %.3f s (with the sink's share)", (a - $0) / Double(timers) * 1000) } } ?? ""))
        let r = Result(count: lateness.count, seconds: 0, latenciesMs: lateness)
        say(String(
            format: "timers: %d of %d fired; lateness after the due time p50 %.1f ms, p99 %.1f ms, max %.1f ms",
            lateness.count, timers, r.p50, r.p99, r.max))
        byDue.report(window: 5)
        let u = process.usage()
        say(String(format: "switchboard peak RSS %.1f MB, CPU %.3f s per 1000 timers (start and fire)", u.peakMB, u.cpuSeconds / Double(timers) * 1000))
        let fired = Double(max(0, lateness.count - 1)) / max(Double(sink.lastArrival - sink.firstArrival) / 1e9, 1e-9)
        process.stop()
        // The same broker alone, in the same run: the rate no timer path through it can pass.
        let ceiling = try DeadLetterCeiling.measure(options: options, count: timers, ttlSeconds: delaySeconds, logger: logger)
        say(String(format: "ceiling  (bare broker: %d TTL messages dead-lettered out of a quorum delay queue): %.0f/s over %.1f s", timers, ceiling.rate, ceiling.seconds))
        say(String(format: "timers: fired at %.0f/s (due at %.0f/s): %.2f of the broker's dead-letter ceiling", fired, rate, fired / ceiling.rate))
    }
}

/// Lateness by due time, in windows: tells a stall (one window late) from a drift (every window later).
final class Lateness: @unchecked Sendable {
    private let lock = NSLock()
    private var samples: [(due: UInt64, ms: Double)] = []

    func add(due: UInt64, ms: Double) {
        lock.lock()
        samples.append((due, ms))
        lock.unlock()
    }

    func report(window seconds: Double) {
        lock.lock()
        let all = samples.sorted { $0.due < $1.due }
        lock.unlock()
        guard let first = all.first?.due else { return }
        let width = UInt64(seconds * 1e9)
        var windows: [UInt64: [Double]] = [:]
        for s in all { windows[(s.due - first) / width, default: []].append(s.ms) }
        for key in windows.keys.sorted() {
            let r = Result(count: windows[key]!.count, seconds: 0, latenciesMs: windows[key]!)
            say(String(
                format: "timers: due %3.0f-%3.0f s: %5d, lateness p50 %7.1f ms, p99 %7.1f ms, max %7.1f ms",
                Double(key) * seconds, Double(key + 1) * seconds, r.count, r.p50, r.p99, r.max))
        }
    }
}

/// The broker's own ceiling for timers (issue 25): how fast RabbitMQ alone dead-letters expired messages out
/// of a quorum delay queue like Switchboard's (per-queue TTL, at-least-once dead-lettering, reject-publish),
/// into a plain queue a consumer drains. `count` messages are published as fast as confirms allow with a TTL
/// long enough for the publishing to end first; the rate is what arrives between the first and the last
/// dead-lettered message. No Switchboard, no store.
enum DeadLetterCeiling {
    static func measure(options: ConnectionOptions, count: Int, ttlSeconds: Int, logger: Logger) throws -> (rate: Double, seconds: Double) {
        let delayQueue = "bench.ttl.delay", outQueue = "bench.ttl.out"
        let setup = try Connection(options, logger: logger)
        try? setup.deleteQueue(delayQueue)
        setup.close()
        let c = try Connection(options, logger: logger)
        defer { c.close() }
        try c.declareQueue(outQueue)
        try c.purgeQueue(outQueue)
        try c.declareQueue(delayQueue, arguments: [
            "x-queue-type": .string("quorum"),
            "x-message-ttl": .int(Int64(ttlSeconds) * 1000),
            "x-dead-letter-exchange": .string(""),
            "x-dead-letter-routing-key": .string(outQueue),
            "x-dead-letter-strategy": .string("at-least-once"),
            "x-overflow": .string("reject-publish"),
        ])
        let arrivals = Sink(queue: outQueue, expected: count, options: options, logger: logger, patience: Double(ttlSeconds) + 60) { d, now in
            d.message.properties.messageId.map { ($0, 0) }
        }
        try arrivals.start()
        try c.enableConfirms()
        let body = Data(#"{"timer":"bench-due","conversation":"0123456789abcdef0123456789abcdef"}"#.utf8)
        let begin = nanos()
        for seq in 0..<count {
            try c.publish(
                exchange: "", routingKey: delayQueue,
                message: Message(body: body, properties: Properties(contentType: "application/json", messageId: "ttl-\(seq)", persistent: true)))
            if seq % 200 == 199 { _ = try c.waitForConfirms(timeout: 60) }
        }
        _ = try c.waitForConfirms(timeout: 60)
        let published = Double(nanos() - begin) / 1e9
        guard published < Double(ttlSeconds) else {
            throw EngineBench.EngineBenchError(description: "publishing \(count) took \(published) s, longer than the TTL (\(ttlSeconds) s): raise --timer-delay")
        }
        _ = try arrivals.wait()
        let span = Double(arrivals.lastArrival - arrivals.firstArrival) / 1e9
        try? c.deleteQueue(delayQueue)
        try? c.deleteQueue(outQueue)
        return (Double(count - 1) / max(span, 1e-9), span)
    }
}
