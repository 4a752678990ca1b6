import AMQP
import Crypto
import Foundation
import Logging
import Rules
import Store
import Telemetry

/// Spreads units of work over the live processes of a group, with no configuration: every process
/// heartbeats into the store, reads the list of its group's live members, and takes its share of a
/// balanced assignment that all compute the same from the same list (`assignment`: a change of
/// membership moves few units). Workers share the work partitions; intakes share the inbound queues.
/// When the list changes, a process restarts its consumers on its new share; units that move are
/// released by the old owner (graceful stop of its loop) or by the broker (a dead process's connection
/// closes), and the exclusive consume flag keeps two processes off one queue meanwhile.
package final class Coordinator {
    /// Who shares what. A member's id starts with its group's prefix (workers have none, so workers of an
    /// older release still see only workers), and the store answers a heartbeat with the caller's group.
    package enum Group: String, Sendable {
        case workers, intakes

        var prefix: String { self == .intakes ? MemberGroup.intakePrefix : "" }
        var unitName: String { self == .intakes ? "inbound queue(s)" : "partition(s)" }
        var processName: String { self == .intakes ? "intake" : "worker" }
        /// The gauges of how many units this process owns and how many members are live.
        var ownedGauge: String { self == .intakes ? "switchboard_intake_queues_owned" : "switchboard_partitions_owned" }
        var liveGauge: String { self == .intakes ? "switchboard_intakes_live" : "switchboard_workers_live" }
    }

    /// A loop started for a share, stopped when the share changes.
    package struct Running {
        var flag: StopFlag
        var done: DispatchSemaphore
    }

    private let group: Group
    private let units: Int
    private let store: FleetStore
    private let logger: Logger
    private let start: ([Int]) -> [Running]
    private let assigned: (Set<Int>) -> Void
    /// Without an answer from the store at start, take every unit (exclusive consumers: the first process
    /// gets each queue, the others stand by) instead of none; for intakes, which need no store otherwise.
    private let aloneWithoutStore: Bool
    package let member: String
    private let heartbeatInterval: TimeInterval = 1
    /// A process that has not been seen for this long is taken for dead and its units move.
    private let ttl: TimeInterval = 4

    package init(
        group: Group, units: Int, store: FleetStore, logger: Logger, aloneWithoutStore: Bool = false,
        assigned: @escaping (Set<Int>) -> Void = { _ in }, start: @escaping ([Int]) -> [Running]
    ) {
        self.group = group
        self.units = units
        self.store = store
        self.logger = logger
        self.aloneWithoutStore = aloneWithoutStore
        self.assigned = assigned
        self.start = start
        member = group.prefix + "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString.prefix(8))"
    }

    /// The workers: `threads` loops over this process's share of the work partitions. `local`: told which
    /// partitions this process consumes (for a fused intake in the same process).
    package static func workers(
        config: SwitchboardConfig, store: FleetStore, options: ConnectionOptions, threads: Int, logger: Logger,
        local: LocalPartitions? = nil
    ) -> Coordinator {
        let threads = max(1, threads)
        return Coordinator(
            group: .workers, units: config.settings.partitions, store: store, logger: logger,
            assigned: { local?.setOwned($0) }
        ) { partitions in
            let count = min(threads, partitions.count)
            // Not ready until each new loop consumes (the loops report themselves; this covers the gap).
            for t in 0..<count { Readiness.shared.set("worker-\(t)", ready: false, "starting") }
            return (0..<count).map { t in
                let mine = stride(from: t, to: partitions.count, by: count).map { partitions[$0] }
                return Running.thread { flag in
                    let handler = WorkerHandler(config: config, store: store, partitions: mine, logger: logger, local: local)
                    ConsumerLoop(name: "worker-\(t)", config: config, options: options, handler: handler, stopFlag: flag, logger: logger).run()
                }
            }
        }
    }

    /// The intakes: one loop over this process's share of the inbound queues (each consumed by one intake
    /// at a time, so a ticket's messages keep their order). `handler` makes the loop's handler for a share.
    package static func intakes(
        config: SwitchboardConfig, store: FleetStore, options: ConnectionOptions, logger: Logger,
        handler: @escaping @Sendable ([(queue: String, tag: String)]) -> BatchHandler
    ) -> Coordinator {
        let all = IntakeHandler.queues(config)
        return Coordinator(group: .intakes, units: all.count, store: store, logger: logger, aloneWithoutStore: true) { share in
            guard !share.isEmpty else { return [] }
            Readiness.shared.set("intake", ready: false, "starting")
            let queues = share.map { all[$0] }
            // Bounded so that the worst case (every window full of the largest messages) fits the memory it has.
            let prefetch = config.settings.intakePrefetch(queues: queues.count)
            return [Running.thread { flag in
                ConsumerLoop(
                    name: "intake", config: config, options: options, handler: handler(queues), stopFlag: flag, logger: logger,
                    prefetch: prefetch
                ).run()
            }]
        }
    }

    /// The share of `member` among `members`: every worker computes the same from the same list.
    package static func share(of member: String, members: [String], partitions: Int) -> [Int] {
        guard members.contains(member) else { return [] }
        return assignment(members: members, partitions: partitions).filter { $0.value == member }.map(\.key).sorted()
    }

    /// Partition -> member: balanced (each member gets floor or ceil of partitions / members), and a member
    /// joining or leaving moves few partitions (about the ones that must move, where `p mod n` moved
    /// twice as many). Rendezvous hashing with capacities: each (member, partition) pair has a score, and
    /// the pairs are taken from the strongest down while the member has room. Which members get the one
    /// extra partition is by score too, so it does not depend on their names' order.
    package static func assignment(members: [String], partitions: Int) -> [Int: String] {
        let list = Array(Set(members)).sorted()
        guard !list.isEmpty, partitions > 0 else { return [:] }
        let (base, extra) = partitions.quotientAndRemainder(dividingBy: list.count)
        var room: [String: Int] = [:]
        for (i, m) in list.sorted(by: { (score($0, "extra"), $0) > (score($1, "extra"), $1) }).enumerated() {
            room[m] = base + (i < extra ? 1 : 0)
        }
        var pairs: [(score: UInt64, partition: Int, member: String)] = []
        pairs.reserveCapacity(partitions * list.count)
        for p in 0..<partitions { for m in list { pairs.append((score(m, String(p)), p, m)) } }
        pairs.sort { ($0.score, $0.partition, $0.member) > ($1.score, $1.partition, $1.member) }
        var out: [Int: String] = [:]
        for pair in pairs where out[pair.partition] == nil && room[pair.member, default: 0] > 0 {
            out[pair.partition] = pair.member
            room[pair.member]! -= 1
        }
        return out
    }

    private static func score(_ member: String, _ key: String) -> UInt64 {
        let digest = SHA256.hash(data: Data("\(member)/\(key)".utf8))
        return digest.prefix(8).reduce(0) { $0 << 8 | UInt64($1) }
    }

    package func run(stop: StopFlag) {
        let health = Readiness.shared
        let part = group == .workers ? "coordinator" : "intake-coordinator"
        var current: [Int]? = nil
        var running: [Running] = []
        health.set(part, ready: false, "joining the \(group.processName)s through the store")
        defer { health.remove(part) }
        let change = { (mine: [Int], live: Int) in
            self.logger.info("\(self.group.processName) share assigned", metadata: [
                "sb.member": "\(self.member)", "sb.\(self.group.processName)s": "\(live)",
                "sb.units": "\(mine.map(String.init).joined(separator: ","))",
            ])
            self.assigned([])
            Self.stopAll(&running)
            running = self.start(mine)
            self.assigned(Set(mine))
            current = mine
            Meters.gauge(self.group.ownedGauge, [], Double(mine.count))
        }
        while !stop.isStopped {
            do {
                // The store answers with the caller's group; filtered here too for a store of an older release.
                let members = MemberGroup.peers(of: member, among: try store.heartbeat(member: member, ttl: ttl))
                Meters.gauge(group.liveGauge, [], Double(members.count))
                let mine = Self.share(of: member, members: members, partitions: units)
                if mine != current { change(mine, members.count) }
                health.set(
                    part, ready: true,
                    "\(members.count) \(group.processName) process(es) live; this one consumes \(group.unitName) \(mine.isEmpty ? "none" : mine.map(String.init).joined(separator: ","))")
            } catch {
                if current == nil, aloneWithoutStore {
                    // Never heard from the store: consume everything; exclusive consumers sort out who gets what.
                    logger.warning("the store does not answer; consuming every queue until it does (others stand by)", metadata: ["sb.error": "\(error)"])
                    change(Array(0..<units), 1)
                }
                // Keeping its share: a process that lost the store still consumes what it had.
                health.set(part, ready: current != nil, "the store did not answer the heartbeat: \(error)")
                logger.error("heartbeat to the store failed", metadata: ["sb.error": "\(error)"])
            }
            let next = Date().addingTimeInterval(heartbeatInterval)
            stop.wait(until: next)
        }
        assigned([])
        Self.stopAll(&running)
        Meters.gauge(group.ownedGauge, [], 0)
        try? store.leave(member: member)
    }

    private static func stopAll(_ running: inout [Running]) {
        for r in running { r.flag.stop() }
        for r in running { r.done.wait() }
        running = []
    }
}

extension Coordinator.Running {
    /// A loop on a thread of its own, stopped through its flag.
    static func thread(_ body: @escaping @Sendable (StopFlag) -> Void) -> Self {
        let flag = StopFlag()
        let done = DispatchSemaphore(value: 0)
        Thread {
            body(flag)
            done.signal()
        }.start()
        return .init(flag: flag, done: done)
    }
}
