import AMQP
import Crypto
import Foundation
import Logging
import Rules
import Store

/// Spreads the work partitions over the live worker processes, with no configuration: every worker
/// heartbeats into the store, reads the list of live workers, and takes its share of a balanced
/// assignment that all workers compute the same from the same list (`assignment`: a change of
/// membership moves few partitions). When the list changes, a worker restarts its consumers on its new share; partitions that move
/// are released by the old owner (graceful stop of its loop) or by the broker (a dead process's
/// connection closes), and the exclusive consume flag keeps two workers off one partition meanwhile.
package final class Coordinator {
    private let config: SwitchboardConfig
    private let store: ConversationStore
    private let options: ConnectionOptions
    private let logger: Logger
    private let threads: Int
    private let local: LocalPartitions?
    package let member: String
    private let heartbeatInterval: TimeInterval = 1
    /// A worker that has not been seen for this long is taken for dead and its partitions move.
    private let ttl: TimeInterval = 4

    private struct Running {
        var flag: StopFlag
        var done: DispatchSemaphore
    }

    /// `local`: told which partitions this process consumes (for a fused intake in the same process).
    package init(
        config: SwitchboardConfig, store: ConversationStore, options: ConnectionOptions, threads: Int, logger: Logger,
        local: LocalPartitions? = nil
    ) {
        self.config = config
        self.local = local
        self.store = store
        self.options = options
        self.threads = max(1, threads)
        self.logger = logger
        member = "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)-\(UUID().uuidString.prefix(8))"
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
        var current: [Int]? = nil
        var running: [Running] = []
        health.set("coordinator", ready: false, "joining the workers through the store")
        defer { health.remove("coordinator") }
        while !stop.isStopped {
            do {
                let members = try store.heartbeat(member: member, ttl: ttl)
                Meters.gauge("switchboard_workers_live", [], Double(members.count))
                let mine = Self.share(of: member, members: members, partitions: config.settings.partitions)
                if mine != current {
                    logger.info("partitions assigned", metadata: [
                        "sb.member": "\(member)", "sb.workers": "\(members.count)",
                        "sb.partitions": "\(mine.map(String.init).joined(separator: ","))",
                    ])
                    local?.setOwned([])
                    stopAll(&running)
                    running = start(mine)
                    local?.setOwned(Set(mine))
                    current = mine
                    Meters.gauge("switchboard_partitions_owned", [], Double(mine.count))
                }
                health.set(
                    "coordinator", ready: true,
                    "\(members.count) worker process(es) live; this one consumes partition(s) \(mine.isEmpty ? "none" : mine.map(String.init).joined(separator: ","))")
            } catch {
                health.set("coordinator", ready: false, "the store did not answer the heartbeat: \(error)")
                logger.error("heartbeat to the store failed", metadata: ["sb.error": "\(error)"])
            }
            let next = Date().addingTimeInterval(heartbeatInterval)
            while !stop.isStopped, Date() < next { Thread.sleep(forTimeInterval: 0.05) }
        }
        local?.setOwned([])
        stopAll(&running)
        Meters.gauge("switchboard_partitions_owned", [], 0)
        try? store.leave(member: member)
    }

    private func start(_ partitions: [Int]) -> [Running] {
        let count = min(threads, partitions.count)
        // Not ready until each new loop consumes (the loops report themselves; this covers the gap).
        for t in 0..<count { Readiness.shared.set("worker-\(t)", ready: false, "starting") }
        return (0..<count).map { t in
            let mine = stride(from: t, to: partitions.count, by: count).map { partitions[$0] }
            let flag = StopFlag()
            let done = DispatchSemaphore(value: 0)
            let (config, store, options, logger, local) = (self.config, self.store, self.options, self.logger, self.local)
            let thread = Thread {
                let handler = WorkerHandler(config: config, store: store, partitions: mine, logger: logger, local: local)
                ConsumerLoop(
                    name: "worker-\(t)", config: config, options: options, handler: handler, stopFlag: flag, logger: logger
                ).run()
                done.signal()
            }
            thread.start()
            return Running(flag: flag, done: done)
        }
    }

    private func stopAll(_ running: inout [Running]) {
        for r in running { r.flag.stop() }
        for r in running { r.done.wait() }
        running = []
    }
}
