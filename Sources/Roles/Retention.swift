import Foundation
import Logging
import Rules
import Store
import Telemetry

/// The pruning pass: in the process that owns the store, at start and then every `interval`, removes
/// what is older than `settings.retention_*` (in rounds of `limit` rows, so no transaction is long).
package enum Retention {
    package static let interval: TimeInterval = 600
    static let limit = 5_000

    /// One pass: rounds until nothing more is old. Returns what it removed.
    @discardableResult
    package static func prune(
        _ store: MaintenanceStore, retention: Settings.Retention, now: Date = Date(), limit: Int = limit, backend: String = "sqlite"
    ) throws -> Pruned {
        var total = Pruned()
        while true {
            let round = try MeteredStore.time("prune", backend: backend) { try store.prune(now: now, retention: retention, limit: limit) }
            total.bodies += round.bodies
            total.processed += round.processed
            total.conversations += round.conversations
            if !round.full(limit) { return total }
        }
    }

    /// `store`: the database itself (pruning runs next to it); its parked table's size is a gauge too.
    package static func service(config: SwitchboardConfig, store: any MaintenanceStore & ParkedStore, backend: String, logger: Logger) -> RoleService {
        RoleService(name: "retention") { flag in
            var next = Date()
            var nextCount = Date()
            while !flag.isStopped {
                // The parked gauge also falls when an operator replays or discards (in another process, maybe).
                if Date() >= nextCount {
                    nextCount = Date().addingTimeInterval(15)
                    if let n = try? store.parkedTotal() { Meters.gauge("switchboard_parked_stored", [], Double(n)) }
                }
                if Date() >= next {
                    next = Date().addingTimeInterval(interval)
                    do {
                        let pruned = try prune(store, retention: config.settings.retention, backend: backend)
                        if pruned != Pruned() {
                            logger.info("pruned what is older than the retention allows", metadata: ["sb.pruned": "\(pruned)"])
                        }
                    } catch {
                        // The next pass tries again; nothing is lost by waiting.
                        logger.warning("pruning failed", metadata: ["sb.error": "\(error)"])
                    }
                }
                flag.wait(until: min(next, nextCount))
            }
        }
    }
}
