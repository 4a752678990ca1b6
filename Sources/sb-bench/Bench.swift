import AMQP
import ArgumentParser
import Foundation
import Logging
import Roles
import Synchronization
import Wiring

// One file (about 450 lines), on purpose: the benchmark's options and its run and fleet shapes read top to
// bottom as the sequence BENCHMARKS.md describes; the timer, engine and admin shapes have files of their own.

/// `make bench`: how fast Switchboard moves ticket updates through a real broker, against the broker's
/// own ceiling measured in the same run: a bare relay with the same batching and confirms, no rules,
/// no store. The last line is `bench: ratio R` (pipeline / ceiling).
@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "sb-bench", abstract: "Switchboard throughput and latency benchmark.")

    @Option(help: "Broker URL of a vhost the bench may fill and purge.") var url = "amqp://guest:guest@localhost:5672/sb-bench"
    @Option(help: "Ticket updates per run.") var messages = 50_000
    @Option(help: "Body size in bytes.") var size = 1024
    @Option(help: "Distinct tickets (conversations).") var conversations = 1000
    @Option(help: "Work partitions.") var partitions = 8
    @Option(help: "Worker threads in the switchboard process.") var workers = 2
    @Option(help: "The switchboard binary to measure.") var binary = ".build/release/switchboard"
    @Option(help: "Configuration directory for switchboard.") var config = "Config"
    @Option(help: "Burst runs against the same process (RSS must stay flat).") var runs = 2
    @Option(help: "run: one `switchboard run` (the target's all-in-one); fleet: `switchboard store`, `intake` and --worker-processes `worker` processes; engine: intake's routing, the rules and the SQLite store on one thread, no broker; replay: `rules replay` over --messages recorded messages of --conversations conversations; admin: search and conversation page over HTTP on a store filled with --conversations; timers: lateness of --timers timers coming due at --timer-rate per second.")
    var shape = "run"
    @Option(help: "Worker processes in the fleet shape (each with --workers threads).") var workerProcesses = 2
    @Option(help: "Intake processes in the fleet shape (they share the inbound queues; the load is on one endpoint).") var intakeProcesses = 1
    @Option(help: "admin shape: requests of each kind to time.") var samples = 2000
    @Option(help: "admin shape: a PostgreSQL URL (an empty database or schema) instead of SQLite.") var storeUrl: String?
    @Option(help: "run and fleet shapes: fill the store (SQLite, or the PostgreSQL of SB_STORE_URL) with this many other conversations (with history) before the run.") var prefill = 0
    @Option(help: "timers shape: timers started (each on a conversation of its own).") var timers = 100_000
    @Option(help: "timers shape: the rate at which they start, and so come due, per second.") var timerRate = 2000.0
    @Option(help: "timers shape: the timers' delay in seconds.") var timerDelay = 60

    func run() async throws {
        if shape == "replay" {
            say("bench: replay of \(messages) recorded messages over \(conversations) conversations, against the configuration that decided them")
            return try await ReplayBench.measure(messages: messages, conversations: conversations, config: config)
        }
        if shape == "admin" {
            say("bench: the admin view on \(conversations) conversations")
            return try AdminBench.measure(conversations: conversations, samples: samples, storeURL: storeUrl, config: config)
        }
        if shape == "engine" {
            say("bench: \(messages) messages of \(size) bytes over \(conversations) conversations, engine and store only")
            return try EngineBench.measure(
                messages: messages, size: size, conversations: conversations, batchSize: 100, runs: runs, config: config)
        }
        let logger = Logger(label: "sb-bench")
        let options = try ConnectionOptions(url: url)

        if shape == "timers" {
            return try TimerBench.measure(
                options: options, url: url, binary: binary, config: config, timers: timers, rate: timerRate,
                delaySeconds: timerDelay, partitions: partitions, workers: workers, logger: logger)
        }
        say("bench: \(messages) messages of \(size) bytes over \(conversations) conversations, \(partitions) partitions, \(workers) worker thread(s), broker \(options.redacted)")

        // 1. The ceiling: consume, publish onward with confirms, ack after the confirm; nothing else.
        let relayBroker = SwitchboardProcess.brokerCPU()
        let ceiling = try Relay.measure(options: options, messages: messages, size: size, logger: logger)
        say(String(format: "ceiling  (bare relay, batches of 100, confirms): %.0f msg/s (%d in %.2f s)", ceiling.rate, ceiling.count, ceiling.seconds)
            + ((relayBroker.flatMap { b in SwitchboardProcess.brokerCPU().map { ($0 - b) / Double(messages) * 1000 } })
                .map { String(format: "; broker CPU %.3f s per 1000 msgs", $0) } ?? ""))

        // 2. The pipeline: `switchboard run` with the example rules (map, translate, attribute).
        guard shape == "run" || shape == "fleet" else { throw ValidationError("--shape: run or fleet") }
        let roles: [(name: String, args: [String])] = shape == "run"
            ? [("run", ["run"])]
            : [("store", ["store"])]
                + (0..<max(1, intakeProcesses)).map { intakeProcesses > 1 ? ("intake-\($0)", ["intake"]) : ("intake", ["intake"]) }
                + (0..<max(1, workerProcesses)).map { ("worker-\($0)", ["worker"]) }
        // One data folder for all of them: only the store (or run) opens the database in it.
        let dataDir = NSTemporaryDirectory() + "sb-bench-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        if prefill > 0 { try Self.prefill(prefill, dataDir: dataDir, config: config, logger: logger) }
        var processes: [(name: String, process: SwitchboardProcess)] = []
        defer { for p in processes.reversed() { p.process.stop() } }
        for role in roles {
            processes.append((role.name, try SwitchboardProcess(
                binary: binary, args: role.args, config: config, url: url, dataDir: dataDir, partitions: partitions,
                workers: workers)))
        }
        say("bench: shape \(shape): " + processes.map(\.name).joined(separator: ", "))
        try SwitchboardProcess.waitUntilConsuming(options: options, logger: logger)
        func usage() -> (cpuSeconds: Double, rss: String, peak: String) {
            let all = processes.map { ($0.name, $0.process.usage()) }
            let cpu = all.reduce(0) { $0 + $1.1.cpuSeconds }
            let show = { (v: (String, SwitchboardProcess.Usage) -> Double) in
                all.map { "\($0.0) " + String(format: "%.1f MB", v($0.0, $0.1)) }.joined(separator: ", ")
            }
            return (cpu, show { $1.rssMB }, show { $1.peakMB })
        }
        var best = 0.0
        let database = dataDir + "/switchboard.sqlite"
        func fileBytes(_ path: String) -> Double {
            (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.doubleValue ?? 0
        }
        func databaseBytes() -> Double { fileBytes(database) }
        let bytesBefore = (written: processes.reduce(0.0) { $0 + $1.process.usage().writeBytes }, database: databaseBytes())
        let brokerBefore = SwitchboardProcess.brokerCPU()
        let selfBefore = SwitchboardProcess.cpuSeconds(pid: getpid())
        for run in 1...max(1, runs) {
            let r = try Load.run(
                options: options, messages: messages, size: size, conversations: conversations, run: run, rate: nil,
                target: "sb.out.vendor-x", logger: logger)
            best = max(best, r.rate)
            let u = usage()
            say(String(
                format: "pipeline run %d: %.0f msg/s (%d in %.2f s), latency p50 %.1f ms p99 %.1f ms max %.1f ms; ",
                run, r.rate, r.count, r.seconds, r.p50, r.p99, r.max)
                + "RSS \(u.rss) (peak \(u.peak)), "
                + String(format: "CPU %.3f s per 1000 msgs", u.cpuSeconds / Double(messages * run) * 1000))
        }
        if let before = selfBefore, let after = SwitchboardProcess.cpuSeconds(pid: getpid()) {
            say(String(format: "load generator and sink CPU %.3f s per 1000 msgs over the burst runs (this process)", (after - before) / Double(messages * runs) * 1000))
        }
        if let before = brokerBefore, let after = SwitchboardProcess.brokerCPU() {
            // Includes the load generator's and the sink's share of the broker's work (publish, deliver).
            say(String(format: "broker CPU %.3f s per 1000 msgs over the burst runs (RabbitMQ's process, everything it did)", (after - before) / Double(messages * runs) * 1000))
        }
        // 3. Latency at half the measured maximum rate.
        // The broker's CPU per message at the same rate, pipeline and relay: what the pipeline's traffic costs
        // the broker beyond the relay's (its exchanges, headers, store requests, queue metrics).
        func brokerShare(_ before: Double?) -> String {
            (before.flatMap { b in SwitchboardProcess.brokerCPU().map { ($0 - b) / Double(messages / 2) * 1000 } })
                .map { String(format: "; broker CPU %.3f s per 1000 msgs", $0) } ?? ""
        }
        let pacedBroker = SwitchboardProcess.brokerCPU()
        let paced = try Load.run(
            options: options, messages: messages / 2, size: size, conversations: conversations, run: runs + 1, rate: best / 2,
            target: "sb.out.vendor-x", logger: logger)
        say(String(format: "pipeline at %.0f msg/s (half the maximum): latency p50 %.1f ms p99 %.1f ms max %.1f ms", best / 2, paced.p50, paced.p99, paced.max)
            + brokerShare(pacedBroker))
        // The broker's own latency at that rate: what no pipeline on this machine can go below.
        let relayPacedBroker = SwitchboardProcess.brokerCPU()
        let relayPaced = try Relay.measure(options: options, messages: messages / 2, size: size, rate: best / 2, logger: logger)
        say(String(format: "ceiling  at %.0f msg/s (bare relay, same rate): latency p50 %.1f ms p99 %.1f ms max %.1f ms", best / 2, relayPaced.p50, relayPaced.p99, relayPaced.max)
            + brokerShare(relayPacedBroker))
        let u = usage()
        let total = Double(messages * runs + messages / 2)
        // What the store writes per message (issue 25, bytes per message): the kernel's count of bytes sent
        // to storage by Switchboard's processes (WAL frames, checkpoints, fsync'd pages), and what the
        // SQLite file and its WAL grew by.
        let written = processes.reduce(0.0) { $0 + $1.process.usage().writeBytes } - bytesBefore.written
        let grown = databaseBytes() - bytesBefore.database
        say(String(format: "store: %.0f bytes written to storage per message (/proc/<pid>/io write_bytes)", written / total)
            + (grown > 0 || fileBytes(database + "-wal") > 0
                ? String(format: "; the SQLite file grew %.2f MB per 1000 msgs (its WAL is %.1f MB now)", grown / total * 1000 / 1_048_576,
                         fileBytes(database + "-wal") / 1_048_576)
                : ""))
        say("switchboard peak RSS \(u.peak), "
            + String(format: "CPU %.3f s per 1000 msgs over all runs (all processes)", u.cpuSeconds / total * 1000))
        if processes.count > 1 {
            // Per role, for the capacity model (docs/scaling.md).
            say("CPU per 1000 msgs by process: " + processes.map {
                "\($0.name) " + String(format: "%.3f s", $0.process.usage().cpuSeconds / total * 1000)
            }.joined(separator: ", "))
        }
        say(String(format: "bench: ratio %.2f", best / ceiling.rate))
    }
}

extension Bench {
    /// The store the run will open, filled first with `count` conversations of their own tickets (each with
    /// two references, an attribute, a counter, five timeline entries with a body, an outbound message).
    static func prefill(_ count: Int, dataDir: String, config directory: String, logger: Logger) throws {
        var environment = ProcessInfo.processInfo.environment
        environment["SB_DATA_DIR"] = dataDir
        // The store the run will use: SQLite in the data folder, or the PostgreSQL of SB_STORE_URL.
        let postgres = environment["SB_STORE_URL"]?.hasPrefix("postgres") ?? false
        if !postgres { environment["SB_STORE_URL"] = "sqlite" }
        environment["SB_SQLITE_SYNCHRONOUS"] = "normal"
        let config = try Setup.loadConfig(directory: directory, environment: environment)
        let started = nanos()
        do {
            let store = try Stores.openStandalone(config, logger: logger)
            try AdminBench.fill(store, conversations: count, prefix: "PF", progress: "bench: prefill")
        }
        let seconds = Double(nanos() - started) / 1e9
        let bytes = (try? FileManager.default.attributesOfItem(atPath: dataDir + "/switchboard.sqlite")[.size] as? Int) ?? 0
        say(String(format: "bench: store prefilled with %d conversations in %.0f s; ", count, seconds)
            + (postgres ? "PostgreSQL (SB_STORE_URL)" : String(format: "switchboard.sqlite %.0f MB", Double(bytes) / 1e6)))
    }
}

func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

struct Result {
    var count: Int
    var seconds: Double
    var latenciesMs: [Double]

    var rate: Double { Double(count) / seconds }
    func percentile(_ p: Double) -> Double {
        guard !latenciesMs.isEmpty else { return 0 }
        let sorted = latenciesMs.sorted()
        return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
    }
    var p50: Double { percentile(0.50) }
    var p99: Double { percentile(0.99) }
    var max: Double { latenciesMs.max() ?? 0 }
}

func nanos() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

/// Sleeps until message `seq` is due at `rate` per second from `since`.
func pace(seq: Int, rate: Double, since: UInt64) {
    let due = since + UInt64(Double(seq) / rate * 1e9)
    let now = nanos()
    if due > now { Thread.sleep(forTimeInterval: Double(due - now) / 1e9) }
}

/// A ServiceNow-style incident update padded to `size` bytes. `correlation_display` carries the vendor
/// key, so every conversation is linked to vendor-x and takes the update rule (map, translate, attribute).
func body(seq: Int, conversations: Int, size: Int) -> Data {
    let n = seq % conversations
    var text = #"{"number":"INC\#(String(format: "%07d", n))","correlation_display":"VX-\#(n)","short_description":"Bench update \#(seq)","priority":"\#(seq % 5 + 1)","state":"2","assignment_group":{"value":"g-sap","display_value":"SAP Support"},"sys_updated_by":"bench","description":""#
    let filler = max(0, size - text.utf8.count - 2)
    text += String(repeating: "x", count: filler) + #""}"#
    return Data(text.utf8)
}

/// Publishes, and collects what arrives on the target queue.
enum Load {
    static func run(
        options: ConnectionOptions, messages: Int, size: Int, conversations: Int, run: Int, rate: Double?, target: String,
        logger: Logger
    ) throws -> Result {
        let sink = Sink(queue: target, expected: messages, options: options, logger: logger, idField: .correlationId)
        let started = nanos()
        try sink.start()
        let publisher = Thread {
            do {
                let c = try Connection(options, logger: logger)
                defer { c.close() }
                try c.enableConfirms()
                let begin = nanos()
                for seq in 0..<messages {
                    if let rate { pace(seq: seq, rate: rate, since: begin) }
                    let props = Properties(contentType: "application/json", messageId: "b\(run)-\(seq)-\(nanos())")
                    try c.publish(exchange: "sb.in", routingKey: "customer-a", message: Message(body: body(seq: seq, conversations: conversations, size: size), properties: props))
                    if seq % 200 == 199 { _ = try c.waitForConfirms(timeout: 30) }
                }
                _ = try c.waitForConfirms(timeout: 30)
            } catch {
                logger.error("publisher failed", metadata: ["error": "\(error)"])
            }
        }
        publisher.start()
        let latencies = try sink.wait()
        return Result(count: latencies.count, seconds: Double(sink.lastArrival - started) / 1e9, latenciesMs: latencies)
    }
}

/// Consumes a queue until `expected` distinct messages arrived (or nothing came for `patience` seconds).
/// `measure` names a delivery and says its latency in ms, given the arrival time; nil: not one of ours.
final class Sink: @unchecked Sendable {
    enum IdField { case messageId, correlationId }
    let queue: String
    let expected: Int
    let options: ConnectionOptions
    let logger: Logger
    let patience: Double
    let measure: @Sendable (Delivery, UInt64) -> (id: String, ms: Double)?
    private let done = DispatchSemaphore(value: 0)
    private var latencies: [Double] = []
    private var failure: Error?
    private(set) var firstArrival: UInt64 = 0
    private(set) var lastArrival: UInt64 = 0

    /// Latency from the nanoseconds at the end of the message's (or its correlation) id to its arrival.
    convenience init(queue: String, expected: Int, options: ConnectionOptions, logger: Logger, idField: IdField) {
        self.init(queue: queue, expected: expected, options: options, logger: logger) { d, now in
            let id = (idField == .messageId ? d.message.properties.messageId : d.message.properties.correlationId) ?? ""
            return id.split(separator: "-").last.flatMap { UInt64($0) }.map { (id, Double(now - $0) / 1e6) }
        }
    }

    init(
        queue: String, expected: Int, options: ConnectionOptions, logger: Logger, patience: Double = 60,
        measure: @escaping @Sendable (Delivery, UInt64) -> (id: String, ms: Double)?
    ) {
        self.queue = queue
        self.expected = expected
        self.options = options
        self.logger = logger
        self.patience = patience
        self.measure = measure
    }

    func start() throws {
        let ready = DispatchSemaphore(value: 0)
        let thread = Thread { [self] in
            var seen = Set<String>()
            do {
                let c = try Connection(options, logger: logger)
                defer { c.close() }
                try c.qos(prefetch: 2000)
                try c.consume(queue)
                ready.signal()
                var idle = 0.0
                var unacked = 0
                while seen.count < expected, idle < patience {
                    guard let d = try c.nextDelivery(timeout: 1) else {
                        idle += 1
                        continue
                    }
                    idle = 0
                    let now = nanos()
                    if let (id, ms) = measure(d, now), seen.insert(id).inserted {
                        latencies.append(ms)
                        if firstArrival == 0 { firstArrival = now }
                        lastArrival = now
                    }
                    unacked += 1
                    if unacked >= 200 {
                        try c.ack(d, multiple: true)
                        unacked = 0
                    }
                }
            } catch {
                failure = error
                ready.signal()
            }
            done.signal()
        }
        thread.start()
        ready.wait()
        if let failure { throw failure }
    }

    func wait() throws -> [Double] {
        done.wait()
        if let failure { throw failure }
        return latencies
    }
}

/// The ceiling: ConsumerLoop (the same cycle every Switchboard role runs) with a handler that only
/// forwards, between two plain queues.
enum Relay {
    final class Forward: BatchHandler {
        var queues: [(queue: String, tag: String)] { [("bench.relay.in", "bench-relay")] }
        var exclusive: Bool { false }
        func handle(_ batch: [Delivery]) throws -> [Outgoing] {
            batch.map { Outgoing(exchange: "", routingKey: "bench.relay.out", message: $0.message) }
        }
    }

    static func measure(options: ConnectionOptions, messages: Int, size: Int, rate: Double? = nil, logger: Logger) throws -> Result {
        let setup = try Connection(options, logger: logger)
        try setup.declareQueue("bench.relay.in")
        try setup.declareQueue("bench.relay.out")
        try setup.purgeQueue("bench.relay.in")
        try setup.purgeQueue("bench.relay.out")
        setup.close()
        let stop = StopFlag()
        // The loop declares Switchboard's fixed queues: of the type the pipeline will declare them with
        // (SB_QUEUE_TYPE, as in Config/), or the pipeline's declare would be refused as inequivalent.
        var topology = Topology(endpoints: [], partitions: 0)
        topology.queueType = ProcessInfo.processInfo.environment["SB_QUEUE_TYPE"] ?? "classic"
        let relay = Thread { [topology] in
            ConsumerLoop(
                name: "relay", options: options, topology: topology, prefetch: 200, batchSize: 100,
                handler: Forward(), stopFlag: stop, logger: logger
            ).run()
        }
        relay.start()
        defer { stop.stop() }
        let sink = Sink(queue: "bench.relay.out", expected: messages, options: options, logger: logger, idField: .messageId)
        let started = nanos()
        try sink.start()
        let c = try Connection(options, logger: logger)
        defer { c.close() }
        try c.enableConfirms()
        let begin = nanos()
        for seq in 0..<messages {
            if let rate { pace(seq: seq, rate: rate, since: begin) }
            let props = Properties(contentType: "application/json", messageId: "relay-\(seq)-\(nanos())")
            try c.publish(exchange: "", routingKey: "bench.relay.in", message: Message(body: body(seq: seq, conversations: 1000, size: size), properties: props))
            if seq % 200 == 199 { _ = try c.waitForConfirms(timeout: 30) }
        }
        _ = try c.waitForConfirms(timeout: 30)
        let latencies = try sink.wait()
        return Result(count: latencies.count, seconds: Double(sink.lastArrival - started) / 1e9, latenciesMs: latencies)
    }
}

/// `switchboard run` as a child process, with its resource usage read from /proc.
final class SwitchboardProcess {
    let process = Process()

    init(binary: String, args: [String], config: String, url: String, dataDir: String, partitions: Int, workers: Int) throws {
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = args + ["--config", config, "--log-level", "warning"]
        var env = ProcessInfo.processInfo.environment
        env["SB_BROKER_URL"] = url
        env["SB_DATA_DIR"] = dataDir
        env["SB_PARTITIONS"] = String(partitions)
        env["SB_WORKERS"] = String(workers)
        process.environment = env
        process.standardOutput = FileHandle.nullDevice
        try process.run()
    }

    static func waitUntilConsuming(options: ConnectionOptions, logger: Logger) throws {
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if let c = try? Connection(options, logger: logger) {
                defer { c.close() }
                if let work = try? c.queueDepth("sb.work.0"), work.consumers > 0,
                    let store = try? c.queueDepth("sb.store"), store.consumers > 0,
                    let c2 = try? Connection(options, logger: logger), let intake = try? c2.queueDepth("sb.in.customer-a")
                {
                    c2.close()
                    if intake.consumers > 0 { return }
                }
            }
            Thread.sleep(forTimeInterval: 0.2)
        }
        throw ValidationError("switchboard did not start consuming within 30 s")
    }

    struct Usage {
        var rssMB: Double
        var peakMB: Double
        var cpuSeconds: Double
        /// Bytes the process caused to be written to storage so far (`write_bytes` of /proc/<pid>/io).
        var writeBytes: Double
    }

    func usage() -> Usage {
        let pid = process.processIdentifier
        var usage = Usage(rssMB: 0, peakMB: 0, cpuSeconds: 0, writeBytes: 0)
        if let io = try? String(contentsOfFile: "/proc/\(pid)/io", encoding: .utf8),
            let line = io.split(separator: "\n").first(where: { $0.hasPrefix("write_bytes:") })
        {
            usage.writeBytes = Double(line.split(separator: " ").last ?? "") ?? 0
        }
        if let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) {
            for line in status.split(separator: "\n") {
                let parts = line.split(separator: " ", omittingEmptySubsequences: true)
                if line.hasPrefix("VmRSS:"), parts.count > 1 { usage.rssMB = (Double(parts[1]) ?? 0) / 1024 }
                if line.hasPrefix("VmHWM:"), parts.count > 1 { usage.peakMB = (Double(parts[1]) ?? 0) / 1024 }
            }
            // The kernel updates the high-water mark lazily; the current RSS can be above it for a while.
            usage.peakMB = max(usage.peakMB, usage.rssMB)
        }
        usage.cpuSeconds = Self.cpuSeconds(pid: pid) ?? 0
        return usage
    }

    /// User + system CPU of a process so far, from /proc.
    static func cpuSeconds(pid: Int32) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else {
            return nil
        }
        // Fields after the command name: state is field 3; utime and stime are fields 14 and 15.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let u = Double(fields[11]), let s = Double(fields[12]) else { return nil }
        return (u + s) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// The local broker's CPU (Deploy/local/rabbitmq.sh writes its pid), for the broker's cost per message.
    static func brokerCPU() -> Double? {
        let file = ProcessInfo.processInfo.environment["SB_RABBITMQ_PID_FILE"] ?? ".rabbitmq/rabbitmq.pid"
        guard let text = try? String(contentsOfFile: file, encoding: .utf8),
            let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
        else { return nil }
        return cpuSeconds(pid: pid)
    }

    func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
    }
}
