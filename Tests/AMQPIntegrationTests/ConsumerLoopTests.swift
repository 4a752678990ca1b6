import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Roles
import Synchronization
import Testing

@testable import AMQP

/// The consume -> handle -> publish -> confirm -> ack cycle every role runs, against the real broker.
@Suite(.serialized) struct ConsumerLoopTests {
    /// Forwards every message and notes when each batch was handled and when it was confirmed and acked.
    final class Recorder: BatchHandler, @unchecked Sendable {
        let input: String
        let output: String
        let events = Mutex<[String]>([])
        /// The message ids of every batch handled, in order.
        let batches = Mutex<[[String]]>([])
        init(input: String, output: String) {
            self.input = input
            self.output = output
        }
        var queues: [(queue: String, tag: String)] { [(input, "loop-test")] }
        var exclusive: Bool { false }
        func handle(_ batch: [Delivery]) throws -> [Outgoing] {
            let first = batch[0].message.properties.messageId ?? "?"
            events.withLock { $0.append("handle \(first)") }
            batches.withLock { $0.append(batch.map { $0.message.properties.messageId ?? "?" }) }
            // Time for the broker to deliver the next batch while this one is in hand.
            Thread.sleep(forTimeInterval: 0.02)
            return batch.map { Outgoing(exchange: "", routingKey: output, message: $0.message) }
        }
        func confirmed(_ batch: [Delivery]) {
            let first = batch[0].message.properties.messageId ?? "?"
            events.withLock { $0.append("confirmed \(first)") }
        }
    }

    /// The next batch is handled and published while the broker confirms the one before; each batch is
    /// still acked only after its confirms, once, in order, and everything arrives once, in order.
    @Test func theNextBatchIsHandledWhileTheLastOneIsConfirmed() throws {
        let c = try Broker.connect()
        defer { c.close() }
        let input = Broker.uniqueQueue("loop-in")
        let output = Broker.uniqueQueue("loop-out")
        try c.declareQueue(input)
        try c.declareQueue(output)
        defer {
            try? c.deleteQueue(input)
            try? c.deleteQueue(output)
        }
        try c.enableConfirms()
        let count = 1000
        for i in 0..<count {
            try c.publish(exchange: "", routingKey: input, message: Message(body: Data("\(i)".utf8), properties: Properties(messageId: "m\(i)")))
        }
        #expect(try c.waitForConfirms(timeout: 10).allConfirmed)

        let recorder = Recorder(input: input, output: output)
        let stop = StopFlag()
        let done = Atomic<Bool>(false)
        let loop = Thread {
            ConsumerLoop(
                name: "loop-test", options: try! ConnectionOptions(url: Broker.url),
                topology: Topology(endpoints: [], partitions: 0), prefetch: 200, batchSize: 50, handler: recorder,
                stopFlag: stop, logger: Broker.logger
            ).run()
            done.store(true, ordering: .relaxed)
        }
        loop.start()
        let deadline = Date().addingTimeInterval(30)
        let handledAll = { recorder.batches.withLock { $0.joined().count } >= count }
        let confirmedAll = { recorder.events.withLock { $0.filter { $0.hasPrefix("confirmed") }.count } == recorder.batches.withLock { $0.count } }
        while !(handledAll() && confirmedAll()), Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        stop.stop()
        while !done.load(ordering: .relaxed), Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }

        // Batches are whatever had arrived, up to 50: each message in exactly one, in order.
        let batches = recorder.batches.withLock { $0 }
        #expect(Array(batches.joined()) == (0..<count).map { "m\($0)" })
        let firsts = batches.map { $0[0] }
        let events = recorder.events.withLock { $0 }
        #expect(events.filter { $0.hasPrefix("confirmed") } == firsts.map { "confirmed \($0)" })
        // Overlap: batch n+1 was handled before batch n was confirmed (acked), for most batches.
        let position = { (event: String) in events.firstIndex(of: event) ?? Int.max }
        let overlapped = firsts.indices.dropLast().filter { n in
            position("handle \(firsts[n + 1])") < position("confirmed \(firsts[n])")
        }
        #expect(firsts.count >= 2 && overlapped.count >= firsts.count / 2, "\(events)")
        // Everything acked (nothing back in the queue after the loop closed its connection) and forwarded once, in order.
        #expect(try c.queueDepth(input).messages == 0)
        try c.consume(output)
        var out: [String] = []
        while out.count < count, let d = try c.nextDelivery(timeout: 5) { out.append(d.message.properties.messageId ?? "") }
        #expect(out == (0..<count).map { "m\($0)" })
        #expect(try c.nextDelivery(timeout: 0.3) == nil)
    }

    /// A batch's publishes leave the socket corked (full TCP segments) and it is uncorked afterwards,
    /// also when the batch fails.
    @Test func aBatchIsPublishedThroughACorkedSocket() throws {
        let c = try Broker.connect()
        defer { c.close() }
        func corked() -> Int32 {
            var value: Int32 = -1
            var size = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(c.socket, Int32(IPPROTO_TCP), TCP_CORK, &value, &size)
            return value
        }
        let q = Broker.uniqueQueue("cork")
        try c.declareQueue(q, durable: false, autoDelete: true)
        try c.enableConfirms()
        #expect(corked() == 0)
        let inside = try c.corked { () throws(AMQPError) -> Int32 in
            for i in 0..<10 { try c.publish(exchange: "", routingKey: q, message: Message(body: Data("\(i)".utf8))) }
            return corked()
        }
        #expect(inside == 1)
        #expect(corked() == 0)
        #expect(try c.waitForConfirms(timeout: 10).allConfirmed)
        #expect(throws: AMQPError.self) { try c.corked { () throws(AMQPError) in throw AMQPError(.timeout, "test") } }
        #expect(corked() == 0)
        #expect(try c.queueDepth(q).messages == 10)
    }

    /// A handler that fails its first `failures` calls (the store away), then forwards; exclusive or not.
    final class Flaky: BatchHandler, @unchecked Sendable {
        let input: String
        let output: String
        let exclusive: Bool
        let failures = Mutex(0)
        /// Every delivery seen, with the broker's delivery count header (set on a quorum queue's redelivery).
        let seen = Mutex<[(id: String, deliveryCount: String?)]>([])
        init(input: String, output: String, failures: Int = 0, exclusive: Bool = false) {
            (self.input, self.output, self.exclusive) = (input, output, exclusive)
            self.failures.withLock { $0 = failures }
        }
        var queues: [(queue: String, tag: String)] { [(input, "loop-test")] }
        func handle(_ batch: [Delivery]) throws -> [Outgoing] {
            seen.withLock { s in
                for d in batch { s.append((d.message.properties.messageId ?? "?", d.message.properties.headers["x-delivery-count"]?.description)) }
            }
            if failures.withLock({ n in
                defer { n -= 1 }
                return n > 0
            }) {
                throw AMQPError(.timeout, "the store is away (test)")
            }
            return batch.map { Outgoing(exchange: "", routingKey: output, message: $0.message) }
        }
        func confirmed(_ batch: [Delivery]) {}
    }

    final class Finished: Sendable {
        let flag = Atomic<Bool>(false)
        var done: Bool { flag.load(ordering: .relaxed) }
    }

    static func run(_ handler: Flaky, _ stop: StopFlag) -> Finished {
        let finished = Finished()
        Thread {
            ConsumerLoop(
                name: "loop-test", options: try! ConnectionOptions(url: Broker.url),
                topology: Topology(endpoints: [], partitions: 0), prefetch: 50, batchSize: 10, handler: handler,
                stopFlag: stop, logger: Broker.logger
            ).run()
            finished.flag.store(true, ordering: .relaxed)
        }.start()
        return finished
    }

    static func take(_ c: Connection, _ queue: String, _ count: Int) throws -> [String] {
        let tag = try c.consume(queue)
        defer { try? c.cancel(consumerTag: tag) }
        var out: [String] = []
        while out.count < count, let d = try c.nextDelivery(timeout: 10) {
            out.append(d.message.properties.messageId ?? "")
            try c.ack(d)
        }
        return out
    }

    /// The store away: the loop holds the batch and tries again in place; nothing goes back to the queue,
    /// so a quorum queue's delivery limit (1 here: one return would drop the message) never counts it.
    @Test func aFailedBatchIsHeldNotReturned() throws {
        let c = try Broker.connect()
        defer { c.close() }
        let input = Broker.uniqueQueue("held-in")
        let output = Broker.uniqueQueue("held-out")
        try c.declareQueue(input, arguments: ["x-queue-type": .string("quorum"), "x-delivery-limit": .int(1)])
        try c.declareQueue(output)
        defer {
            try? c.deleteQueue(input)
            try? c.deleteQueue(output)
        }
        try c.enableConfirms()
        for i in 0..<30 { try c.publish(exchange: "", routingKey: input, message: Message(body: Data(), properties: Properties(messageId: "m\(i)"))) }
        #expect(try c.waitForConfirms(timeout: 10).allConfirmed)
        let flaky = Flaky(input: input, output: output, failures: 2)
        let stop = StopFlag()
        let done = Self.run(flaky, stop)
        defer {
            stop.stop()
            while !done.done { Thread.sleep(forTimeInterval: 0.05) }
        }
        #expect(try Self.take(c, output, 30) == (0..<30).map { "m\($0)" })
        let seen = flaky.seen.withLock { $0 }
        // The first batch three times (held), never redelivered by the broker.
        #expect(seen.filter { $0.id == "m0" }.count == 3)
        #expect(seen.allSatisfy { $0.deliveryCount == nil }, "\(seen.filter { $0.deliveryCount != nil })")
        #expect(try c.queueDepth(input).messages == 0)
    }

    /// The management API's view of a queue's consumers: (consumer tag, activity status) pairs; the
    /// consumer count of queue.declare-ok leaves out a single-active-consumer queue's waiting ones.
    static func consumers(_ queue: String) throws -> [String] {
        let url = URL(string: "\(ProcessInfo.processInfo.environment["SB_TEST_MANAGEMENT_URL"] ?? "http://localhost:15672")/api/queues/%2F/\(queue)")!
        var request = URLRequest(url: url)
        request.setValue("Basic " + Data("guest:guest".utf8).base64EncodedString(), forHTTPHeaderField: "Authorization")
        let answer = Mutex<Data?>(nil)
        let done = DispatchSemaphore(value: 0)
        URLSession.shared.dataTask(with: request) { data, _, _ in
            answer.withLock { $0 = data }
            done.signal()
        }.resume()
        _ = done.wait(timeout: .now() + 10)
        let data = try #require(answer.withLock { $0 })
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let details = json["consumer_details"] as? [[String: Any]] ?? []
        return details.map { "\($0["activity_status"] ?? "?")" }
    }

    /// Loops that start on the same single-active-consumer quorum queue at once: one takes the lock
    /// and consumes, the others stand by without registering (a waiting consumer would receive later
    /// messages before the ones the active one returns when it dies). It takes over when the first stops.
    @Test func loopsStartingTogetherOnAQuorumQueueLeaveOneConsumer() throws {
        let c = try Broker.connect()
        defer { c.close() }
        let input = Broker.uniqueQueue("sac-in")
        let output = Broker.uniqueQueue("sac-out")
        try c.declareQueue(input, arguments: ["x-queue-type": .string("quorum"), "x-single-active-consumer": .bool(true)])
        try c.declareQueue(output)
        defer {
            try? c.deleteQueue(input)
            try? c.deleteQueue(output)
        }
        try c.enableConfirms()
        // Four at once: without the lock, two of them find the queue free together in most runs.
        let loops = (0..<4).map { _ in Flaky(input: input, output: output, exclusive: true) }
        let stops = loops.map { _ in StopFlag() }
        let finished = zip(loops, stops).map { Self.run($0, $1) }
        defer {
            for stop in stops { stop.stop() }
            while !finished.allSatisfy(\.done) { Thread.sleep(forTimeInterval: 0.05) }
        }
        // The management API's figures lag by up to its statistics interval (5 s): look for 8 s.
        var seen: [[String]] = []
        for _ in 0..<40 {
            seen.append(try Self.consumers(input))
            Thread.sleep(forTimeInterval: 0.2)
        }
        #expect(seen.allSatisfy { $0.count <= 1 }, "\(seen)")
        #expect(seen.last == ["single_active"], "\(seen)")
        for i in 0..<20 { try c.publish(exchange: "", routingKey: input, message: Message(body: Data(), properties: Properties(messageId: "m\(i)"))) }
        #expect(try c.waitForConfirms(timeout: 10).allConfirmed)
        #expect(try Self.take(c, output, 20) == (0..<20).map { "m\($0)" })
        let counts = loops.map { $0.seen.withLock { $0.count } }
        #expect(counts.sorted() == [0, 0, 0, 20], "\(counts)")
        // The active one stops; another takes over within seconds and gets the rest.
        stops[counts.firstIndex(of: 20) ?? 0].stop()
        for i in 20..<30 { try c.publish(exchange: "", routingKey: input, message: Message(body: Data(), properties: Properties(messageId: "m\(i)"))) }
        #expect(try c.waitForConfirms(timeout: 10).allConfirmed)
        #expect(try Self.take(c, output, 10) == (20..<30).map { "m\($0)" })
        #expect(loops.map { $0.seen.withLock { $0.count } }.reduce(0, +) == 30)
    }
}
