import AMQP
import Foundation
import JSONPath
import Logging
import Rules
import Store
import Roles
import Wiring

/// `sb-bench --shape engine`: what one worker thread costs per message without a broker: intake's routing,
/// the worker's decisions and its SQLite commits, batch by batch, on the same messages and rules as the
/// pipeline. For comparing changes to the engine and the store (CPU per message), not a target figure.
enum EngineBench {
    static func measure(messages: Int, size: Int, conversations: Int, batchSize: Int, runs: Int, config directory: String) throws {
        let logger = Logger(label: "sb-bench")
        let (config, store, dataDir) = try scratchStore(directory, logger: logger)
        // SB_BENCH_KEEP_STORE=1 keeps the scratch store for a look inside (`dbstat`); its folder is printed.
        let keep = ProcessInfo.processInfo.environment["SB_BENCH_KEEP_STORE"] == "1"
        defer { if keep { say("engine: store kept in \(dataDir)") } else { try? FileManager.default.removeItem(atPath: dataDir) } }
        let intake = IntakeHandler(config: config, logger: logger)
        let worker = WorkerHandler(
            config: config, store: store, partitions: Array(0..<config.settings.partitions), logger: logger)
        let endpoint = "customer-a"
        let wroteBefore = ioCounters()
        for run in 1...max(1, runs) {
            let started = nanos()
            let cpu = cpuSeconds()
            var sent = 0
            var seq = 0
            while seq < messages {
                var bodies: [JSON?] = []
                let batch = (seq..<min(messages, seq + batchSize)).map { n in
                    let inbound = Delivery(
                        deliveryTag: UInt64(n + 1), redelivered: false, exchange: "sb.in", routingKey: endpoint,
                        consumerTag: "sb-intake:\(endpoint)",
                        message: Message(
                            body: body(seq: n, conversations: conversations, size: size),
                            properties: Properties(contentType: "application/json", messageId: "e\(run)-\(n)")),
                        generation: 1)
                    // As the fused intake does: the worker decides on the body intake parsed.
                    var body: JSON?
                    let routed = intake.route(inbound, body: &body)
                    bodies.append(body)
                    return Delivery(
                        deliveryTag: inbound.deliveryTag, redelivered: false, exchange: routed.exchange,
                        routingKey: routed.routingKey, consumerTag: "sb-worker:\(routed.routingKey)", message: routed.message,
                        generation: 1)
                }
                sent += try worker.handle(batch, bodies: bodies)
                    .filter { $0.exchange == Contract.outboundExchange && $0.routingKey == "vendor-x" }.count
                seq += batch.count
            }
            let seconds = Double(nanos() - started) / 1e9
            guard sent == messages else {
                throw EngineBenchError(description: "expected \(messages) updates to vendor-x, the rules produced \(sent)")
            }
            say(String(
                format: "engine run %d: %.0f msg/s (%d in %.2f s, batches of %d, one thread, no broker), CPU %.3f s per 1000 msgs",
                run, Double(messages) / seconds, messages, seconds, batchSize, (cpuSeconds() - cpu) / Double(messages) * 1000))
        }
        // What the store wrote: `wchar` counts every byte handed to write(2) (WAL frames, checkpoints) at once;
        // `write_bytes` what reached the disk so far (the kernel writes back later).
        let wrote = ioCounters()
        let total = Double(messages * max(1, runs))
        let file = (try? FileManager.default.attributesOfItem(atPath: dataDir + "/switchboard.sqlite")[.size] as? Int) ?? 0
        say(String(
            format: "engine store: %.0f bytes written per message (write calls), %.0f reached the disk so far; the SQLite file is %.2f MB per 1000 msgs",
            (wrote.wchar - wroteBefore.wchar) / total, (wrote.writeBytes - wroteBefore.writeBytes) / total, Double(file) / total * 1000 / 1_048_576))
    }

    /// `wchar` and `write_bytes` of this process (/proc/self/io).
    static func ioCounters() -> (wchar: Double, writeBytes: Double) {
        var out = (wchar: 0.0, writeBytes: 0.0)
        for line in ((try? String(contentsOfFile: "/proc/self/io", encoding: .utf8)) ?? "").split(separator: "\n") {
            let value = Double(line.split(separator: " ").last ?? "") ?? 0
            if line.hasPrefix("wchar:") { out.wchar = value }
            if line.hasPrefix("write_bytes:") { out.writeBytes = value }
        }
        return out
    }

    /// The configuration with a SQLite store of its own in a new temporary folder (the caller removes it).
    static func scratchStore(_ directory: String, logger: Logger) throws -> (SwitchboardConfig, any ConversationStore & AdminStore, String) {
        let dataDir = NSTemporaryDirectory() + "sb-bench-\(UUID().uuidString)"
        var environment = ProcessInfo.processInfo.environment
        environment["SB_DATA_DIR"] = dataDir
        let config = try Setup.loadConfig(directory: directory, environment: environment)
        return (config, try Stores.openStandalone(config, logger: logger), dataDir)
    }

    struct EngineBenchError: Error, CustomStringConvertible {
        var description: String
    }

    /// User + system CPU of this process so far (the checkpoint thread included).
    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }
}
