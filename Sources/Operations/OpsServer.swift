import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Hummingbird
import Logging
import Metrics
import NIOCore
import Prometheus
import Rules
import ServiceLifecycle
import Roles
import Synchronization
import Telemetry

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
            if config.settings.metricsListen != nil, port != 0, !portIsFree(host: host, port: port) {
                throw OpsError(description: "metrics_listen \(host):\(port): the address is in use (another process listens there); choose another, or set it to off")
            }
            if config.settings.metricsListen == nil {
                // The role's default port; when another role of the same kind on this machine has it (found
                // now, or at bind time when both start at once), any free port, said loudly.
                out.append(DefaultPortServer(host: host, port: port, logger: logger))
            } else {
                out.append(server(host: host, port: port, logger: logger) { url in say("switchboard: metrics and health probes at \(url)") })
            }
        }
        if queues {
            out.append(QueueMetrics(config: config, options: try Setup.brokerOptions(config), logger: logger))
        }
        return out
    }

    /// Whether nothing listens on host:port now (a bind that is released at once).
    static func portIsFree(host: String, port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return true }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &address.sin_addr) == 1 else { return true }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
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

/// The listener on a role's default port, or on a free one when that port is taken.
struct DefaultPortServer: Service {
    let host: String
    let port: Int
    let logger: Logger

    func run() async throws {
        if Ops.portIsFree(host: host, port: port) {
            do {
                return try await Ops.server(host: host, port: port, logger: logger) { url in
                    say("switchboard: metrics and health probes at \(url)")
                }.run()
            } catch let e as IOError where e.errnoCode == EADDRINUSE {
                // Taken between the check and the bind: fall through to a free port.
            }
        }
        logger.warning("metrics: the default port \(port) is in use; listening on a free port instead (set metrics_listen)")
        try await Ops.server(host: host, port: 0, logger: logger) { url in
            say("switchboard: metrics and health probes at \(url) (port \(port) was in use; set metrics_listen to choose)")
        }.run()
    }
}

package struct OpsError: Error, CustomStringConvertible {
    package var description: String
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
