import AMQP
import Foundation
import JSONPath
import Logging
import Rules
import Store
import Synchronization

/// What a process's fused intake learns from its own workers: the partitions this process consumes now
/// (set by the `Coordinator`), and how far its workers got through what the fused intake routed.
package final class LocalPartitions: Sendable {
    private struct State {
        var owned: Set<Int> = []
        var passed: [Int: UInt64] = [:]
    }
    private let state = Mutex(State())
    /// Marks the messages this process routes, so its workers report only those.
    package let incarnation = String(UUID().uuidString.prefix(8))

    package init() {}

    package var owned: Set<Int> { state.withLock { $0.owned } }

    package func setOwned(_ partitions: Set<Int>) {
        state.withLock { $0.owned = partitions }
    }

    /// A worker of this process committed and published everything up to a marked message of `partition`.
    package func passed(partition: Int, mark: String) {
        guard let colon = mark.firstIndex(of: ":"), mark[..<colon] == incarnation,
            let seq = UInt64(mark[mark.index(after: colon)...])
        else { return }
        state.withLock { $0.passed[partition] = max($0.passed[partition] ?? 0, seq) }
    }

    /// The highest mark of `partition` passed so far (0: none).
    package func passed(partition: Int) -> UInt64 {
        state.withLock { $0.passed[partition] ?? 0 }
    }
}

/// Intake and worker fused, for `switchboard run`: the inbound messages of partitions this process's
/// workers own are evaluated right where they arrive, without the trip through `sb.work.<n>` (one
/// broker crossing fewer per message); the others are routed to their partition as by `IntakeHandler`.
///
/// Per-ticket order holds because one consumer takes each inbound queue (exclusive), and a partition
/// goes from routed to evaluated-here only after a barrier sent through `sb.work.<n>` came out of this
/// process's worker for it: everything routed there before has been committed and published by then.
/// Going the other way needs nothing: a message routed now is behind every one evaluated before.
/// Timers still arrive through `sb.work.<n>`; they are not ordered against inbound messages, and the
/// store's version check makes a timer and a message of one conversation commit one after the other.
package final class FusedIntakeHandler: BatchHandler {
    private let intake: IntakeHandler
    /// Evaluate the direct messages; a partition always goes to the same one, in parallel with the others.
    private let slots: [WorkerHandler]
    private let local: LocalPartitions
    private let logger: Logger
    private var direct: Set<Int> = []
    /// Per partition not evaluated here: the mark of the last message (or barrier) routed to it.
    private var routed: [Int: (seq: UInt64, at: Date)] = [:]
    private var seq: UInt64 = 0
    private var generation: UInt64?
    /// A barrier that did not come back (the partition moved meanwhile, or the broker lost it) is sent again.
    private let barrierRetry: TimeInterval = 5
    /// How long a batch waits for routed messages of an owned partition to come through its worker.
    private let maxWait: TimeInterval = 2
    private let partitions: Int
    /// Batches with fewer messages to evaluate than this are decided by one thread, in one store
    /// transaction: at low rates (small batches) a second transaction costs more than the split saves.
    private static let parallelFrom = 64

    package init(
        config: SwitchboardConfig, store: FleetStore, local: LocalPartitions, threads: Int, logger: Logger,
        queues: [(queue: String, tag: String)]? = nil
    ) {
        intake = IntakeHandler(config: config, logger: logger, queues: queues)
        slots = (0..<max(1, threads)).map { _ in
            WorkerHandler(config: config, store: store, partitions: [], logger: logger, local: local)
        }
        self.local = local
        self.logger = logger
        partitions = config.settings.partitions
    }

    package var exclusive: Bool { intake.exclusive }
    package var queues: [(queue: String, tag: String)] { intake.queues }

    package func handle(_ batch: [Delivery]) throws -> [Outgoing] {
        guard let first = batch.first else { return [] }
        if first.generation != generation {
            // A new connection: another intake may have routed this queue's messages meanwhile.
            generation = first.generation
            direct = []
            routed = [:]
        }
        updateDirect()
        let now = Date()
        var results = [[Outgoing]](repeating: [], count: batch.count)
        var groups = [[(index: Int, delivery: Delivery, body: JSON?)]](repeating: [], count: slots.count)
        for (i, d) in batch.enumerated() {
            var body: JSON?
            var out = intake.route(d, body: &body)
            guard out.exchange == Contract.workExchange, let p = Int(out.routingKey) else {
                results[i] = [out]
                continue
            }
            if direct.contains(p) {
                // As the partition's worker would receive it, with the inbound queue's redelivered flag.
                let work = Delivery(
                    deliveryTag: d.deliveryTag, redelivered: d.redelivered, exchange: out.exchange,
                    routingKey: out.routingKey, consumerTag: d.consumerTag, message: out.message, generation: d.generation)
                groups[p % slots.count].append((i, work, body))
            } else {
                out.message.properties.headers[Contract.Header.barrier] = .string(mark(p, now))
                results[i] = [out]
            }
        }
        var busy = groups.indices.filter { !groups[$0].isEmpty }
        if busy.count > 1, groups.reduce(0, { $0 + $1.count }) < Self.parallelFrom {
            // A few messages: one thread and one transaction cost less than splitting them.
            groups[busy[0]] = busy.flatMap { groups[$0] }.sorted { $0.index < $1.index }
            busy = [busy[0]]
        }
        if busy.count == 1 {
            let g = groups[busy[0]]
            results[g[0].index] = try slots[busy[0]].handle(g.map(\.delivery), bodies: g.map(\.body))
        } else if busy.count > 1 {
            let outcomes = Mutex([Int: Result<[Outgoing], Error>]())
            let runs = busy.map {
                SlotRun(slot: $0, handler: slots[$0], batch: groups[$0].map(\.delivery), bodies: groups[$0].map(\.body))
            }
            DispatchQueue.concurrentPerform(iterations: runs.count) { n in
                let outcome = Result { try runs[n].handler.handle(runs[n].batch, bodies: runs[n].bodies) }
                outcomes.withLock { $0[runs[n].slot] = outcome }
            }
            // Any failure gives the whole batch back; what the others committed is found as already
            // applied when it comes again, and its stored outbox re-published.
            for slot in busy {
                results[groups[slot][0].index] = try outcomes.withLock { $0[slot]! }.get()
            }
        }
        return results.flatMap { $0 } + barriers(now)
    }

    private func mark(_ partition: Int, _ now: Date) -> String {
        seq += 1
        routed[partition] = (seq, now)
        return "\(local.incarnation):\(seq)"
    }

    /// Owned partitions whose last routed message has been through this process's worker become
    /// direct; partitions no longer owned stop being direct at once. Routing on meanwhile would put new
    /// messages behind the awaited one, so this waits a little (it happens when partitions move: at
    /// start, when a worker joins or leaves), and routes the batch as before if they did not get through.
    private func updateDirect() {
        let before = direct
        let owned = local.owned
        direct.formIntersection(owned)
        // Partition -> whether its worker has passed the last mark routed there (absent: nothing routed yet).
        let caughtUp = { [self] in owned.subtracting(direct).compactMap { p in routed[p].map { (p, local.passed(partition: p) >= $0.seq) } } }
        let deadline = Date().addingTimeInterval(maxWait)
        while Date() < deadline, caughtUp().contains(where: { !$0.1 }) {
            Thread.sleep(forTimeInterval: 0.001)
        }
        for (p, done) in caughtUp() where done {
            direct.insert(p)
            routed[p] = nil
        }
        if direct != before {
            let list = { (s: Set<Int>) in s.isEmpty ? "none" : s.sorted().map(String.init).joined(separator: ",") }
            logger.info("intake evaluates the messages of this process's partitions itself", metadata: [
                "sb.direct": "\(list(direct))", "sb.routed": "\(list(Set(0..<partitions).subtracting(direct)))",
            ])
        }
    }

    /// A barrier into each owned partition that is not direct and has nothing routed on its way (or whose
    /// last one is overdue): it flushes what an earlier intake may have left in the partition's queue.
    private func barriers(_ now: Date) -> [Outgoing] {
        var out: [Outgoing] = []
        for p in local.owned.subtracting(direct).sorted() {
            if let last = routed[p], now.timeIntervalSince(last.at) < barrierRetry { continue }
            let props = Properties(
                appId: "switchboard", persistent: false,
                headers: [Contract.Header.kind: .string("barrier"), Contract.Header.barrier: .string(mark(p, now))])
            out.append(Outgoing(exchange: Contract.workExchange, routingKey: String(p), message: Message(body: Data(), properties: props)))
        }
        return out
    }

    /// One slot's share of a batch. Each slot's handler is used by one thread at a time: its own
    /// iteration of `concurrentPerform`, which returns before the next batch starts.
    private struct SlotRun: @unchecked Sendable {
        var slot: Int
        var handler: WorkerHandler
        var batch: [Delivery]
        var bodies: [JSON?]
    }
}
