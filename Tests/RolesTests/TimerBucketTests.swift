import AMQP
import Foundation
import JSONPath
import Logging
import Testing

@testable import Roles
@testable import Rules
@testable import Store

private let timerConfig = """
    settings:
      partitions: 4
    endpoints:
      customer-a:
        ticket_id: $.number
    rules:
      - name: start
        from: customer-a
        stop: true
        set:
          - attribute: number
            value: {field: $.number}
        schedule:
          - timer: remind
            after: 60s
      - name: fire
        timer: remind
        counters: [{counter: fired, increment: 1}]
        send:
          - to: customer-a
            type: reminder
            body: {number: {attribute: number}}
    """

/// Timer buckets (issue 25): the timers one batch schedules travel as one broker message per delay and
/// partition, and the worker that receives a bucket decides each timer on its own.
@Suite struct TimerBucketTests {
    let logger = Logger(label: "test")

    private func ticket(_ n: Int, tag: UInt64) -> Delivery {
        let props = Properties(
            messageId: "start-\(n)", headers: [Contract.Header.endpoint: .string("customer-a"), Contract.Header.kind: .string("ticket")])
        return Delivery(
            deliveryTag: tag, redelivered: false, exchange: Contract.workExchange, routingKey: "0", consumerTag: "t",
            message: Message(body: Data(#"{"number":"INC\#(n)"}"#.utf8), properties: props), generation: 1)
    }

    /// What the delay queue dead-letters back: the published message, as `sb.work.<n>` delivers it.
    private func dueAgain(_ o: Outgoing, tag: UInt64, redelivered: Bool = false) -> Delivery {
        Delivery(
            deliveryTag: tag, redelivered: redelivered, exchange: Contract.workExchange, routingKey: o.routingKey, consumerTag: "t",
            message: o.message, generation: 1)
    }

    private func timersIn(_ o: Outgoing) -> Int { TimerBuckets.timers(in: o.message) }

    @Test func aBatchsTimersTravelAsOneBucketPerPartitionAndEachFiresOnce() throws {
        let cfg = try ConfigLoader.load(files: [("t.yaml", timerConfig)], environment: [:])
        let store = try temporaryStore()
        let worker = WorkerHandler(config: cfg, store: store, partitions: [0, 1, 2, 3], logger: logger)
        let started = try worker.handle((1...40).map { ticket($0, tag: UInt64($0)) })
        // One message per partition that has timers (four partitions, forty tickets), all to the delay exchange.
        #expect(started.allSatisfy { $0.exchange == Contract.timerDelayExchange(60_000) })
        #expect(Set(started.map(\.routingKey)).count == started.count)
        #expect(started.count <= 4 && started.count >= 2)
        #expect(started.map(timersIn).reduce(0, +) == 40)
        #expect(started.contains { $0.message.properties.headers[Contract.Header.kind] == .string("timers") })
        #expect(started.allSatisfy { $0.message.properties.expiration == "60000" })

        // The buckets come due: every timer fires once, on its own conversation, with its own outbound id.
        let fired = try worker.handle(started.enumerated().map { dueAgain($1, tag: UInt64(100 + $0)) })
        #expect(fired.count == 40)
        #expect(fired.allSatisfy { $0.routingKey == "customer-a" && $0.message.properties.type == "reminder" })
        let numbers = try Set(fired.map { try JSON.parse($0.message.body)["number"]?.stringValue ?? "" })
        #expect(numbers == Set((1...40).map { "INC\($0)" }))
        #expect(Set(fired.compactMap(\.message.properties.messageId)).count == 40)
        for n in [1, 17, 40] {
            let c = try #require(try store.find([TicketRef("customer-a", "INC\(n)")]))
            #expect(c.counters["fired"] == 1)
            let kinds = try store.timeline(conversationId: c.id).map(\.kind)
            #expect(kinds.filter { $0 == .timerFired }.count == 1)
        }

        // A bucket redelivered (we died between commit and ack): its timers re-publish their stored outbox,
        // the same message ids; nothing is decided twice.
        let bucket = try #require(started.first { timersIn($0) > 1 })
        let again = try worker.handle([dueAgain(bucket, tag: 200, redelivered: true)])
        #expect(again.count == timersIn(bucket))
        #expect(Set(again.compactMap(\.message.properties.messageId)).isSubset(of: Set(fired.compactMap(\.message.properties.messageId))))
        let c = try #require(try store.find([TicketRef("customer-a", "INC1")]))
        #expect(c.counters["fired"] == 1)
        // The same bucket delivered fresh (not marked redelivered) sends nothing.
        #expect(try worker.handle([dueAgain(bucket, tag: 201)]).isEmpty)
    }

    @Test func anUnreadableBucketIsParkedWholeAndTheRestOfTheBatchApplied() throws {
        let cfg = try ConfigLoader.load(files: [("t.yaml", timerConfig)], environment: [:])
        let store = try temporaryStore()
        let worker = WorkerHandler(config: cfg, store: store, partitions: [0, 1, 2, 3], logger: logger)
        let props = Properties(
            messageId: "timers:2:x",
            headers: [Contract.Header.kind: .string("timers"), Contract.Header.endpoint: .string(Contract.timerEndpoint)])
        let broken = Delivery(
            deliveryTag: 1, redelivered: false, exchange: Contract.workExchange, routingKey: "0", consumerTag: "t",
            message: Message(body: Data(#"{"timers":[{"id":"x"}]}"#.utf8), properties: props), generation: 1)
        let out = try worker.handle([broken, ticket(7, tag: 2)])
        let parked = out.filter { $0.routingKey == Contract.parkedQueue }
        #expect(parked.count == 1)
        #expect(parked.first?.message.properties.headers[Contract.Header.reason]?.description.contains("timer 0 of a bucket lacks") == true)
        #expect(out.contains { $0.exchange == Contract.timerDelayExchange(60_000) })
        #expect(try store.find([TicketRef("customer-a", "INC7")]) != nil)
    }

    private func lone(_ id: String, key: String, delay: Int = 1000) -> Outgoing {
        let props = Properties(
            contentType: "application/json", messageId: id, type: EventType.timer, expiration: String(delay),
            headers: [
                Contract.Header.kind: .string("timer"), Contract.Header.endpoint: .string(Contract.timerEndpoint),
                Contract.Header.conversation: .string("c-\(id)"), Contract.Header.rule: .string("r \"quoted\""),
            ])
        return Outgoing(
            exchange: Contract.timerDelayExchange(delay), routingKey: key,
            message: Message(body: Data(#"{"n":"\#(id)","timer":"remind"}"#.utf8), properties: props))
    }

    @Test func largeTimersFillABucketUpToItsByteBound() throws {
        var big = lone("big", key: "2")
        big.message.body = Data(#"{"n":"\#(String(repeating: "x", count: 400_000))","timer":"remind"}"#.utf8)
        let timers = (0..<5).map { n -> Outgoing in
            var t = big
            t.message.properties.messageId = "big\(n)"
            return t
        }
        var huge = lone("huge", key: "2")
        huge.message.body = Data(#"{"n":"\#(String(repeating: "y", count: 2_000_000))","timer":"remind"}"#.utf8)
        let packed = TimerBuckets.pack(timers + [huge])
        // Two bodies of 400 kB fit under 1 MiB, a third does not; the 2 MB one travels alone.
        #expect(packed.map(timersIn) == [2, 2, 1, 1])
        #expect(packed.allSatisfy { $0.message.body.count < TimerBuckets.maxBytes + 4096 || timersIn($0) == 1 })
        #expect(packed.last?.message.properties.messageId == "huge")
    }

    @Test func packingKeepsOtherMessagesInPlaceLoneTimersAsTheyWereAndBoundsABucket() throws {
        let other = Outgoing(exchange: Contract.outboundExchange, routingKey: "customer-a", message: Message(body: Data("{}".utf8), properties: Properties()))
        let alone = lone("solo", key: "3")
        let many = (0..<600).map { lone("t\($0)", key: "1") }
        let otherDelay = lone("d", key: "1", delay: 5000)
        let packed = TimerBuckets.pack([other, alone] + many[..<300] + [otherDelay, other] + many[300...])
        // A full bucket takes the place of its first timer: the second one of key "1" starts before "d".
        #expect(packed.map(timersIn) == [0, 1, 256, 256, 1, 0, 88])
        #expect(packed[1].message.properties.messageId == "solo" && packed[1].message.body == alone.message.body)
        #expect(packed[4].message.properties.messageId == "d")
        // Opened again: each timer exactly as it was published alone, in order.
        var opened: [Delivery] = []
        for o in [packed[2], packed[3], packed[6]] {
            let d = Delivery(deliveryTag: 9, redelivered: true, exchange: Contract.workExchange, routingKey: "1", consumerTag: "t", message: o.message, generation: 3)
            let timers = try TimerBuckets.open(d)
            #expect(timers.allSatisfy { $0.delivery.deliveryTag == 9 && $0.delivery.redelivered && $0.delivery.generation == 3 })
            opened += timers.map(\.delivery)
        }
        #expect(opened.map(\.message.properties.messageId) == many.map(\.message.properties.messageId))
        #expect(opened.map(\.message.body) == many.map(\.message.body))
        #expect(opened.allSatisfy { $0.message.properties.headers[Contract.Header.rule] == .string("r \"quoted\"") })
        #expect(opened.map { $0.message.properties.headers[Contract.Header.conversation] } == many.map { $0.message.properties.headers[Contract.Header.conversation] })
    }
}
