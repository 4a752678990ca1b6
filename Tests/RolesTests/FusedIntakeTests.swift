import AMQP
import Foundation
import JSONPath
import Logging
import Testing

@testable import Rules
@testable import Store
@testable import Roles

/// `switchboard run`'s intake evaluating its own partitions' messages (FusedIntakeHandler), against a real
/// SQLite store; the broker's part (routing, consuming) is played by hand.
@Suite struct FusedIntakeTests {
    let logger = Logger(label: "test")

    /// A message as an ESB publishes it, delivered from `sb.in.customer-a`.
    func inbound(_ id: String, ticket: String, generation: UInt64 = 1) -> Delivery {
        Delivery(
            deliveryTag: 1, redelivered: false, exchange: Contract.inboundExchange, routingKey: "customer-a",
            consumerTag: "sb-intake:customer-a", message: Message(body: Data(#"{"number":"\#(ticket)"}"#.utf8), properties: Properties(messageId: id)),
            generation: generation)
    }

    /// What the broker hands the partition's worker for a message routed to `sb.work`.
    func work(_ o: Outgoing) -> Delivery {
        Delivery(
            deliveryTag: 1, redelivered: false, exchange: o.exchange, routingKey: o.routingKey, consumerTag: "sb-worker",
            message: o.message, generation: 1)
    }

    func isBarrier(_ o: Outgoing) -> Bool { o.message.properties.headers[Contract.Header.kind] == .string("barrier") }

    @Test func aPartitionIsEvaluatedInIntakeOnlyAfterWhatWasRoutedToItCameThrough() throws {
        let cfg = try config()
        let store = try temporaryStore()
        let all = Set(0..<cfg.settings.partitions)
        let p = Contract.partition(route: Contract.route(endpoint: "customer-a", ticket: "INC1"), partitions: cfg.settings.partitions)
        let local = LocalPartitions()
        local.setOwned(all)
        let fused = FusedIntakeHandler(config: cfg, store: store, local: local, threads: 2, logger: logger)
        let worker = WorkerHandler(config: cfg, store: store, partitions: Array(all), logger: logger, local: local)

        // Nothing has come through yet (an earlier intake may have left messages in sb.work.<n>): the
        // message is routed to its partition, marked (it flushes that partition), and every other owned
        // partition gets a barrier.
        let first = try fused.handle([inbound("m1", ticket: "INC1")])
        let routed = first.filter { !isBarrier($0) }
        #expect(routed.map(\.exchange) == [Contract.workExchange] && routed.map(\.routingKey) == [String(p)])
        #expect(routed[0].message.properties.headers[Contract.Header.barrier] != nil)
        #expect(Set(first.filter(isBarrier).map(\.routingKey)) == Set(all.subtracting([p]).map(String.init)))
        // A mark another process made is not ours.
        local.passed(partition: p, mark: "another:\(UInt64.max)")
        #expect(local.passed(partition: p) == 0)

        // The partitions' worker takes them, and reports them once its batch is confirmed and acked.
        let workBatch = first.map(work)
        let fromWorker = try worker.handle(workBatch)
        #expect(fromWorker.map(\.exchange) == [Contract.outboundExchange])
        worker.confirmed(workBatch)

        // Now the ticket's next message is evaluated right in intake: out to sb.out, no trip through sb.work.
        let second = try fused.handle([inbound("m2", ticket: "INC1")])
        #expect(second.map(\.exchange) == [Contract.outboundExchange])
        #expect(try JSON.parse(second[0].message.body) == ["seen": .string("2")])
        #expect(try store.find([TicketRef("customer-a", "INC1")])?.shownCounters == ["n": 2])

        // The partition moves to another process: routed again at once (behind everything evaluated here).
        local.setOwned(all.subtracting([p]))
        let third = try fused.handle([inbound("m3", ticket: "INC1")])
        #expect(third.map(\.exchange) == [Contract.workExchange] && third.map(\.routingKey) == [String(p)])
        #expect(try store.find([TicketRef("customer-a", "INC1")])?.shownCounters == ["n": 2])

        // A new connection to the broker: another intake may have routed meanwhile, so nothing is direct.
        local.setOwned(all)
        let fourth = try fused.handle([inbound("m4", ticket: "INC2", generation: 2)])
        #expect(fourth.filter { !isBarrier($0) }.map(\.exchange) == [Contract.workExchange])
    }

    /// A few messages are decided by one thread in one store transaction; a full batch is split by
    /// partition over the worker threads (one transaction each), and both give every ticket its messages.
    @Test func smallBatchesTakeOneTransactionLargeOnesAreSplit() throws {
        let cfg = try config()
        let store = InterferingStore(try temporaryStore())
        let all = Set(0..<cfg.settings.partitions)
        let local = LocalPartitions()
        local.setOwned(all)
        let fused = FusedIntakeHandler(config: cfg, store: store, local: local, threads: 2, logger: logger)
        let worker = WorkerHandler(config: cfg, store: store, partitions: Array(all), logger: logger, local: local)
        // Every partition's barrier through its worker: from now on intake evaluates them all itself.
        let flushed = try fused.handle([inbound("m0", ticket: "INC0")]).map(work)
        _ = try worker.handle(flushed)
        worker.confirmed(flushed)

        let partition = { (ticket: String) in
            Contract.partition(route: Contract.route(endpoint: "customer-a", ticket: ticket), partitions: cfg.settings.partitions)
        }
        let tickets = (1..<200).map { "INC\($0)" }
        let even = try #require(tickets.first { partition($0) % 2 == 0 })
        let odd = try #require(tickets.first { partition($0) % 2 == 1 })
        let before = store.commits.withLock { $0 }
        let small = try fused.handle([inbound("s1", ticket: even), inbound("s2", ticket: odd), inbound("s3", ticket: even)])
        #expect(small.map(\.exchange) == Array(repeating: Contract.outboundExchange, count: 3))
        #expect(store.commits.withLock { $0 } == before + 1)

        let large = (0..<80).map { inbound("l\($0)", ticket: $0 % 2 == 0 ? even : odd) }
        let out = try fused.handle(large)
        #expect(out.count == 80 && out.allSatisfy { $0.exchange == Contract.outboundExchange })
        #expect(store.commits.withLock { $0 } == before + 3)
        #expect(try store.find([TicketRef("customer-a", even)])?.shownCounters == ["n": 42])
        #expect(try store.find([TicketRef("customer-a", odd)])?.shownCounters == ["n": 41])
    }
}
