import Foundation
import Logging
import Testing

@testable import AMQP

/// These run against the real broker that `make test` starts (Deploy/local/rabbitmq.sh).
/// SB_TEST_AMQP_URL / SB_TEST_AMQPS_URL / SB_TLS_CA_FILE override the defaults.
enum Broker {
    static let url = ProcessInfo.processInfo.environment["SB_TEST_AMQP_URL"] ?? "amqp://guest:guest@localhost:5672/"
    static let tlsURL = ProcessInfo.processInfo.environment["SB_TEST_AMQPS_URL"] ?? "amqps://guest:guest@localhost:5671/"
    static var caFile: String {
        if let ca = ProcessInfo.processInfo.environment["SB_TLS_CA_FILE"] { return ca }
        // Tests/AMQPIntegrationTests/ConnectionTests.swift -> repo/.rabbitmq/tls/ca.pem
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return repo.appendingPathComponent(".rabbitmq/tls/ca.pem").path
    }
    static let logger = Logger(label: "amqp-test")

    static func connect(_ url: String = url, ca: String? = nil) throws(AMQPError) -> Connection {
        try Connection(try ConnectionOptions(url: url, caFile: ca), logger: logger)
    }

    static func uniqueQueue(_ prefix: String) -> String { "test.\(prefix).\(UInt32.random(in: 0...UInt32.max))" }
}

@Suite(.serialized) struct ConnectionTests {
    @Test func publishConfirmConsumeAck() throws {
        let c = try Broker.connect()
        defer { c.close() }
        let q = Broker.uniqueQueue("roundtrip")
        try c.declareQueue(q, durable: false, autoDelete: false)
        defer { try? c.deleteQueue(q) }
        try c.enableConfirms()
        for i in 0..<250 {
            let props = Properties(contentType: "application/json", messageId: "m-\(i)", correlationId: "c-\(i)",
                                   type: "update", headers: ["x-sb-n": .int(Int64(i)), "x-sb-s": .string("v\(i)")])
            try c.publish(exchange: "", routingKey: q, message: Message(body: Data("{\"n\":\(i)}".utf8), properties: props))
        }
        let outcome = try c.waitForConfirms(timeout: 10)
        #expect(outcome.allConfirmed)
        try c.qos(prefetch: 100)
        try c.consume(q)
        var received: [Delivery] = []
        while received.count < 250, let d = try c.nextDelivery(timeout: 5) {
            received.append(d)
            if received.count % 50 == 0 { try c.ack(d, multiple: true) }
        }
        #expect(received.count == 250)
        #expect(received.map { $0.message.properties.messageId } == (0..<250).map { "m-\($0)" })
        let m = try #require(received.last)
        #expect(m.message.properties.correlationId == "c-249")
        #expect(m.message.properties.type == "update")
        #expect(m.message.properties.contentType == "application/json")
        #expect(m.message.properties.persistent)
        #expect(m.message.properties.headers["x-sb-n"] == .int(249))
        #expect(m.message.properties.headers["x-sb-s"] == .string("v249"))
        #expect(String(decoding: m.message.body, as: UTF8.self) == "{\"n\":249}")
    }

    @Test func unroutableMandatoryMessageIsReturned() throws {
        let c = try Broker.connect()
        defer { c.close() }
        try c.enableConfirms()
        try c.publish(exchange: "", routingKey: Broker.uniqueQueue("nowhere"),
                      message: Message(body: Data("x".utf8), properties: Properties(messageId: "lost-1")))
        let outcome = try c.waitForConfirms(timeout: 10)
        #expect(outcome.returned.count == 1)
        #expect(outcome.returned.first?.message.properties.messageId == "lost-1")
        #expect(outcome.returned.first?.replyCode == 312)
    }

    @Test func deliveryFromAnEarlierConnectionIsNotAcked() throws {
        let q = Broker.uniqueQueue("stale")
        let first = try Broker.connect()
        try first.declareQueue(q, durable: false)
        try first.enableConfirms()
        try first.publish(exchange: "", routingKey: q, message: Message(body: Data("x".utf8)))
        _ = try first.waitForConfirms(timeout: 5)
        try first.consume(q)
        let d = try #require(try first.nextDelivery(timeout: 5))
        first.close()
        let second = try Broker.connect()
        defer { try? second.deleteQueue(q); second.close() }
        #expect(throws: AMQPError.self) { try second.ack(d) }
        // The message came back to the queue: it was never acked.
        try second.consume(q)
        let again = try #require(try second.nextDelivery(timeout: 5))
        #expect(again.redelivered)
        try second.ack(again)
    }

    @Test func declareConflictNamesTheQueue() throws {
        let c = try Broker.connect()
        let q = Broker.uniqueQueue("conflict")
        try c.declareQueue(q, durable: false)
        do {
            try c.declareQueue(q, durable: true)
            Issue.record("a clashing declaration was accepted")
        } catch {
            #expect(error.replyCode == 406)
            #expect(error.message.contains(q))
        }
        let cleanup = try Broker.connect()
        try cleanup.deleteQueue(q)
        cleanup.close()
    }

    @Test func tlsWithVerifiedCertificate() throws {
        let c = try Broker.connect(Broker.tlsURL, ca: Broker.caFile)
        defer { c.close() }
        let q = Broker.uniqueQueue("tls")
        try c.declareQueue(q, durable: false, autoDelete: true)
        try c.enableConfirms()
        try c.publish(exchange: "", routingKey: q, message: Message(body: Data("secure".utf8)))
        #expect(try c.waitForConfirms(timeout: 5).allConfirmed)
    }

    @Test func tlsRefusesAnUnknownCA() throws {
        // The system bundle does not hold our local CA: verification must fail.
        #expect(throws: AMQPError.self) { try Broker.connect(Broker.tlsURL, ca: "/etc/ssl/certs/ca-certificates.crt") }
    }

    @Test func tlsRefusesAHostnameNotInTheCertificate() throws {
        let url = Broker.tlsURL.replacingOccurrences(of: "localhost", with: "127.0.0.1")
        #expect(throws: AMQPError.self) { try Broker.connect(url, ca: Broker.caFile) }
    }

    @Test func wrongPasswordIsALoginErrorWithoutThePassword() throws {
        do {
            _ = try Broker.connect("amqp://guest:hunter2secret@localhost:5672/")
            Issue.record("login with a wrong password succeeded")
        } catch {
            #expect(error.code == .login)
            #expect(!error.description.contains("hunter2secret"))
        }
    }

    @Test func urlRedaction() throws {
        let o = try ConnectionOptions(url: "amqps://user:p%40ss@broker.example:5671/prod")
        #expect(o.password == "p@ss")
        #expect(o.vhost == "prod")
        #expect(o.tls)
        #expect(!o.redacted.contains("p@ss"))
        #expect(throws: AMQPError.self) { try ConnectionOptions(url: "http://nope") }
    }

    @Test func severalNodesShareCredentialsAndVhost() throws {
        let o = try ConnectionOptions(url: "amqps://user:p%40ss,x@node-a:5671, node-b:5681,node-c/prod")
        #expect(o.nodes == [.init(host: "node-a", port: 5671), .init(host: "node-b", port: 5681), .init(host: "node-c", port: 5671)])
        #expect(o.user == "user" && o.password == "p@ss,x" && o.vhost == "prod" && o.tls)
        #expect(o.redactedCluster == "amqps://user:***@node-a:5671,node-b:5681,node-c:5671/prod")
        #expect(try ConnectionOptions(url: "amqp://guest:guest@localhost:5672/").nodes.count == 1)
        #expect(throws: AMQPError.self) { try ConnectionOptions(url: "amqp://u:p@a:5672,b:notaport/v") }
    }

    /// A connection kept after it failed or closed (a pool) answers every call with an error, never a use
    /// of its freed state (a fresh-clone run crashed in librabbitmq this way after a broker node's loss).
    @Test func aClosedConnectionRefusesEveryCall() throws {
        let c = try Broker.connect()
        c.close()
        #expect(!c.isOpen)
        let message = Message(body: Data("x".utf8), properties: Properties())
        #expect(throws: AMQPError.self) { try c.publish(exchange: "", routingKey: "nowhere", message: message) }
        #expect(throws: AMQPError.self) { try c.declareQueue("test.closed") }
        #expect(throws: AMQPError.self) { try c.queueDepth("test.closed") }
        #expect(throws: AMQPError.self) { try c.consume("test.closed") }
        #expect(throws: AMQPError.self) { try c.enableConfirms() }
        #expect(throws: AMQPError.self) { try c.nextDelivery(timeout: 0) }
    }

    /// rabbitmq-c sends without a deadline: the socket carries a TCP user timeout, so a broker that stops
    /// reading it cannot hold a sending thread forever (at least 30 s, and two heartbeat intervals).
    @Test func theSocketGivesUpOnABrokerThatStopsReading() throws {
        for (heartbeat, expected) in [(3, 30_000), (40, 80_000)] {
            var options = try ConnectionOptions(url: Broker.url)
            options.heartbeatSeconds = heartbeat
            let c = try Connection(options, logger: Broker.logger)
            defer { c.close() }
            var value: UInt32 = 0
            var size = socklen_t(MemoryLayout<UInt32>.size)
            #expect(getsockopt(c.socket, Int32(IPPROTO_TCP), TCP_USER_TIMEOUT, &value, &size) == 0)
            #expect(value == UInt32(expected))
        }
    }

    /// A consumer whose queue goes away (deleted, or a transient queue whose cluster node stopped) hears
    /// of it: the broker sends basic.cancel only to clients that announce `consumer_cancel_notify`, and
    /// without it the consumer would wait on nothing forever while the queue is made again elsewhere.
    @Test func aConsumerWhoseQueueIsDeletedIsTold() throws {
        let q = Broker.uniqueQueue("cancelled")
        let consumer = try Broker.connect()
        defer { consumer.close() }
        try consumer.declareQueue(q, durable: false)
        try consumer.consume(q)
        #expect(try consumer.nextDelivery(timeout: 0.2) == nil)
        let other = try Broker.connect()
        defer { other.close() }
        try other.deleteQueue(q)
        #expect {
            _ = try consumer.nextDelivery(timeout: 5)
        } throws: { error in
            (error as? AMQPError)?.code == .consumerCancelled
        }
        #expect(!consumer.isOpen)
    }

    /// A node that does not answer is skipped, whichever node a connection tries first.
    @Test func aConnectionSkipsANodeThatIsDown() throws {
        let live = try ConnectionOptions(url: Broker.url)
        // A port nothing listens on (bound and closed again).
        let dead = "\(live.host):1"
        let url = Broker.url.replacingOccurrences(of: "\(live.host):\(live.port)", with: "\(dead),\(live.host):\(live.port),\(dead)")
        #expect(try ConnectionOptions(url: url).nodes.count == 3)
        for _ in 0..<4 {
            let c = try Broker.connect(url)
            #expect(c.options.port == live.port)
            c.close()
        }
        let none = Broker.url.replacingOccurrences(of: "\(live.host):\(live.port)", with: "\(dead),\(live.host):2")
        #expect {
            try Broker.connect(none)
        } throws: { error in
            "\(error)".contains("no node of the cluster took the connection") && "\(error)".contains(":2")
        }
    }
}

/// Our client must refuse a server that offers only TLS 1.1 (rabbitmq-c 0.11 would accept it by default).
@Test func clientRefusesTLS11() throws {
    let tls = URL(fileURLWithPath: Broker.caFile).deletingLastPathComponent()
    let openssl = Process()
    openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
    let port = Int.random(in: 20000...29999)
    openssl.arguments = ["s_server", "-quiet", "-accept", String(port), "-cert", tls.appendingPathComponent("server.pem").path,
                         "-key", tls.appendingPathComponent("server.key").path, "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]
    openssl.standardOutput = FileHandle.nullDevice
    openssl.standardError = FileHandle.nullDevice
    try openssl.run()
    // s_server does not exit on SIGTERM.
    defer { kill(openssl.processIdentifier, SIGKILL); openssl.waitUntilExit() }
    Thread.sleep(forTimeInterval: 0.5)
    do {
        _ = try Broker.connect("amqps://guest:guest@localhost:\(port)/", ca: Broker.caFile)
        Issue.record("connected to a TLS 1.1 server")
    } catch {
        #expect(error.code == .tls, "\(error)")
    }
}
