import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Logging
import Rules
import ServiceLifecycle
import Roles
import Synchronization
import Telemetry
import Testing
import Wiring

@testable import AMQP

/// The one builder the executable uses, called by a test: every role of `switchboard run` in one
/// ServiceGroup against the real broker (a vhost of its own), ready through the readiness report, a
/// message through, and a graceful shutdown that leaves nothing unacked.
@Suite(.serialized) struct ServiceBuilderTests {
    /// Calls the management API as guest; `body` as JSON.
    static func management(_ method: String, _ path: String, _ body: String? = nil) throws {
        let base = ProcessInfo.processInfo.environment["SB_TEST_MANAGEMENT_URL"] ?? "http://localhost:15672"
        var request = URLRequest(url: URL(string: base + path)!)
        request.httpMethod = method
        request.setValue("Basic " + Data("guest:guest".utf8).base64EncodedString(), forHTTPHeaderField: "Authorization")
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = body.map { Data($0.utf8) }
        let status = Mutex<Int?>(nil)
        let done = DispatchSemaphore(value: 0)
        URLSession.shared.dataTask(with: request) { _, response, _ in
            status.withLock { $0 = (response as? HTTPURLResponse)?.statusCode }
            done.signal()
        }.resume()
        _ = done.wait(timeout: .now() + 10)
        let code = status.withLock { $0 } ?? 0
        guard (200..<300).contains(code) else { throw AMQPError(.connectionClosed, "management \(method) \(path): \(code)") }
    }

    @Test func theBuilderRunsEveryRoleOfRunInOneGroup() async throws {
        let vhost = "sb-builder-\(UInt32.random(in: 0...UInt32.max))"
        try Self.management("PUT", "/api/vhosts/\(vhost)", "{}")
        try Self.management("PUT", "/api/permissions/\(vhost)/guest", #"{"configure":".*","write":".*","read":".*"}"#)
        defer { try? Self.management("DELETE", "/api/vhosts/\(vhost)") }
        let data = FileManager.default.temporaryDirectory.appendingPathComponent("sb-builder-\(UUID().uuidString)").path
        let base = Broker.url.hasSuffix("/") ? Broker.url : Broker.url + "/"
        let config = try ConfigLoader.load(files: [("test.yaml", """
            settings:
              broker_url: \(base)\(vhost)
              data_dir: \(data)
              partitions: 2
              workers: 1
              metrics_listen: "off"
            endpoints:
              customer-a:
                ticket_id: $.number
            rules:
              - name: count
                from: customer-a
                counters: [{counter: n, increment: 1}]
                send:
                  - to: customer-a
                    type: comment
                    body: {seen: "${counter:n}"}
            """)], environment: [:])
        let logger = Logger(label: "builder-test")
        let services = try await ServiceBuilder.services(.all(config), config: config, logger: logger)
        let group = ServiceGroup(configuration: .init(services: services.map { .init(service: $0) }, logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            // Ready through the readiness report every probe reads, not a log line (other suites of this
            // process report parts of their own: only the roles' are looked at).
            let roles: Set = ["store", "store-members", "parked", "intake"]
            func ready() -> Bool {
                let parts = Readiness.shared.report().parts.filter { roles.contains($0.name) }
                return parts.count == roles.count && parts.allSatisfy(\.ready)
            }
            let deadline = Date().addingTimeInterval(30)
            while !ready(), Date() < deadline { try await Task.sleep(for: .milliseconds(100)) }
            #expect(ready(), "\(Readiness.shared.report().parts.map { "\($0.name): \($0.detail)" })")
            let out: [String] = try await withCheckedThrowingContinuation { k in
                Thread {
                    k.resume(with: Result {
                        let c = try Broker.connect(base + vhost)
                        defer { c.close() }
                        try c.enableConfirms()
                        for i in 1...3 {
                            try c.publish(exchange: "sb.in", routingKey: "customer-a", message: Message(
                                body: Data(#"{"number":"INC1"}"#.utf8), properties: Properties(messageId: "m\(i)", type: "update")))
                        }
                        _ = try c.waitForConfirms(timeout: 10)
                        _ = try c.consume("sb.out.customer-a")
                        var bodies: [String] = []
                        while bodies.count < 3, let d = try c.nextDelivery(timeout: 20) {
                            bodies.append(String(decoding: d.message.body, as: UTF8.self))
                            try c.ack(d)
                        }
                        return bodies
                    })
                }.start()
            }
            #expect(out.count == 3 && out.last?.contains(#""seen":"3""#) == true, "\(out)")
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        // Stopped gracefully: nothing left unacked or waiting in the inbound queue.
        let c = try Broker.connect(base + vhost)
        defer { c.close() }
        #expect(try c.queueDepth("sb.in.customer-a").messages == 0)
    }
}
