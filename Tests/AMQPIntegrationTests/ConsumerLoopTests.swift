import Foundation
import Switchboard
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
}
