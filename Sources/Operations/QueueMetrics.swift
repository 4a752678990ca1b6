import AMQP
import Foundation
import Logging
import Rules
import ServiceLifecycle
import Roles
import Telemetry

/// Exports the depth and consumers of every Switchboard queue (an AMQP passive declare each: exact, not
/// the management API's figures that lag by its statistics interval) and the age of the oldest message
/// waiting in each endpoint's inbound and outbound queue (the management API's head_message_timestamp:
/// the one place RabbitMQ tells it). Run by the processes that serve the store, every `interval`.
struct QueueMetrics: Service {
    let topology: Topology
    let endpoints: [String]
    let states: QueueStates
    let management: Management
    let logger: Logger
    let interval: Duration

    init(config: SwitchboardConfig, options: ConnectionOptions, logger: Logger, interval: Duration = .seconds(5)) {
        topology = Topology(config: config)
        endpoints = config.endpointNames
        var o = options
        o.connectionName = "switchboard queue metrics pid \(ProcessInfo.processInfo.processIdentifier)"
        states = QueueStates(options: o, logger: logger)
        management = Management(url: config.settings.managementURL ?? config.admin?.managementURL, broker: options)
        self.logger = logger
        self.interval = interval
    }

    func run() async throws {
        for source in ["amqp", "management"] { Meters.count("switchboard_queue_read_errors_total", [("source", source)], by: 0) }
        try await cancelWhenGracefulShutdown { try await poll() }
    }

    private func poll() async throws {
        var warned = (amqp: false, management: false)
        while !Task.isCancelled {
            let names = topology.queueNames
            let read: Result<[String: (messages: Int, consumers: Int)], any Error>
            do { read = .success(try await Offload.run { [states] in try states.read(names) }) } catch { read = .failure(error) }
            switch read {
            case .success(let depths):
                for (name, d) in depths {
                    Meters.gauge("switchboard_queue_messages", [("queue", name)], Double(d.messages))
                    Meters.gauge("switchboard_queue_consumers", [("queue", name)], Double(d.consumers))
                }
                for e in endpoints {
                    for (direction, queue) in [("in", Contract.inboundQueue(e)), ("out", Contract.outboundQueue(e))] {
                        if let d = depths[queue] { Meters.gauge("switchboard_endpoint_messages", [("endpoint", e), ("direction", direction)], Double(d.messages)) }
                    }
                }
                warned.amqp = false
            case .failure(let error):
                Meters.count("switchboard_queue_read_errors_total", [("source", "amqp")])
                if !warned.amqp { logger.warning("queue metrics: cannot read queue depths", metadata: ["sb.error": "\(error)"]) }
                warned.amqp = true
            }
            do {
                let queues = try await management.queues()
                let now = Date()
                for e in endpoints {
                    for (direction, queue) in [("in", Contract.inboundQueue(e)), ("out", Contract.outboundQueue(e))] {
                        guard let q = queues[queue] else { continue }
                        let age = q.messages == 0 ? 0 : q.headTimestamp.map { max(0, now.timeIntervalSince($0)) }
                        if let age { Meters.gauge("switchboard_endpoint_oldest_message_age_seconds", [("endpoint", e), ("direction", direction)], age) }
                    }
                }
                warned.management = false
            } catch {
                Meters.count("switchboard_queue_read_errors_total", [("source", "management")])
                if !warned.management {
                    logger.warning(
                        "queue metrics: cannot read RabbitMQ's management API; oldest message ages are not exported",
                        metadata: ["sb.management": "\(management.redacted)", "sb.error": "\(error.localizedDescription)"])
                }
                warned.management = true
            }
            try? await Task.sleep(for: interval)
        }
    }
}
