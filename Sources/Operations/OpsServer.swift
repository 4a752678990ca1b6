import Foundation
import Hummingbird
import Logging
import Metrics
import NIOCore
import Prometheus
import Rules
import ServiceLifecycle
import Switchboard
import Synchronization

/// What a process exports: swift-metrics bootstrapped once with swift-prometheus, and the plain HTTP
/// listener of every role (`settings.metrics_listen`) with `/metrics`, `/health/live` and `/health/ready`.
/// Plain HTTP, because scrapers and kubelets speak it inside a cluster; it shows no ticket data and no
/// secret (endpoint, rule and queue names, counts, timings), and listens on 127.0.0.1 unless told otherwise.
package enum Ops {
    /// The process's registry; swift-metrics' backend from `bootstrap()` on.
    package static let registry = PrometheusCollectorRegistry()
    private static let bootstrapped = BootstrapOnce()

    /// Makes swift-metrics report into `registry`, with buckets for what Switchboard measures. Once per process.
    package static func bootstrap() {
        bootstrapped.once {
            var factory = PrometheusMetricsFactory(registry: registry)
            factory.defaultDurationHistogramBuckets = [
                .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
                .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5),
                .seconds(10), .seconds(30),
            ]
            factory.defaultValueHistogramBuckets = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
            MetricsSystem.bootstrap(factory)
        }
    }

    /// The Prometheus text exposition, with a HELP line for each family Switchboard knows (the registry
    /// writes HELP only for metrics made through its own API, not through swift-metrics).
    package static func exposition() -> String {
        annotate(registry.emitToString())
    }

    static let help: [String: String] = Dictionary(uniqueKeysWithValues: Meters.families.map { ($0.name, $0.help) })

    /// Puts `# HELP name text` before every `# TYPE name ...` line whose family has a description.
    package static func annotate(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count + 4096)
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("# TYPE ") {
                let name = line.dropFirst("# TYPE ".count).split(separator: " ").first.map(String.init) ?? ""
                if let h = help[name] { out += "# HELP \(name) \(h)\n" }
            }
            out += line
            out += "\n"
        }
        if out.hasSuffix("\n\n") { out.removeLast() }
        return out
    }

    /// The listener's address for a role: settings.metrics_listen, or 127.0.0.1 on the role's default port;
    /// nil when it is `off`.
    package static func listenAddress(_ settings: Settings, role: String) -> (host: String, port: Int)? {
        guard let listen = settings.metricsListen else { return ("127.0.0.1", Settings.defaultMetricsPort(role: role)) }
        if listen == "off" { return nil }
        return AdminSettings.hostPort(listen)
    }

    /// The services of a process's operations: the listener, and where `queues` is set (the processes
    /// serving the store: one set of queue figures per fleet) the broker's queue depths and ages.
    package static func services(config: SwitchboardConfig, role: String, queues: Bool, logger: Logger) throws -> [any Service] {
        bootstrap()
        var out: [any Service] = []
        if let (host, port) = listenAddress(config.settings, role: role) {
            out.append(server(host: host, port: port, logger: logger) { url in say("switchboard: metrics and health probes at \(url)") })
        }
        if queues {
            out.append(QueueMetrics(config: config, options: try Application.brokerOptions(config), logger: logger))
        }
        return out
    }

    /// The HTTP server with the three routes. `onListening` gets its URL once bound (port 0: any free one).
    package static func server(
        host: String, port: Int, health: Readiness = .shared, logger: Logger, onListening: @escaping @Sendable (String) -> Void = { _ in }
    ) -> some Service {
        let router = Router()
        router.get("/metrics") { _, _ -> Response in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: exposition())))
        }
        router.get("/health/live") { _, _ -> Response in
            let r = health.report()
            return json(r.live ? .ok : .serviceUnavailable, [
                "status": r.live ? "live" : "stalled",
                "stalled": r.stalled,
            ])
        }
        router.get("/health/ready") { _, _ -> Response in
            let r = health.report()
            return json(r.ready ? .ok : .serviceUnavailable, [
                "status": r.ready ? "ready" : "not ready",
                "parts": r.parts.map { p in
                    ["name": p.name, "ready": p.ready, "detail": p.detail, "since": p.since.formatted(.iso8601)] as [String: Any]
                },
            ])
        }
        var appLogger = logger
        appLogger[metadataKey: "sb.role"] = "metrics"
        appLogger.logLevel = max(logger.logLevel, .notice)
        return Hummingbird.Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "switchboard"),
            onServerRunning: { channel in
                let bound = channel.localAddress?.port ?? port
                onListening("http://\(host.contains(":") ? "[\(host)]" : host):\(bound)/")
            },
            logger: appLogger)
    }

    private static func json(_ status: HTTPResponse.Status, _ object: [String: Any]) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// Runs a closure once per process, from any thread.
final class BootstrapOnce: Sendable {
    private let done = Mutex(false)

    func once(_ body: () -> Void) {
        done.withLock { done in
            guard !done else { return }
            done = true
            body()
        }
    }
}
