import Foundation
import Synchronization

/// What `/health/ready` and `/health/live` answer: every part of the process (each consumer loop, the
/// coordinator, the admin's server) says whether it does what it should, and ticks while it runs.
/// Ready: at least one part, and every part ready (connected to the broker and consuming, or standing by
/// as a deliberate standby; the store answering where the part needs it). Live: no part has gone
/// without a tick for `stallLimit` (a thread wedged in a call that never returns).
package final class Readiness: Sendable {
    package static let shared = Readiness()

    package struct Part: Sendable, Equatable {
        package var name: String
        package var ready: Bool
        package var detail: String
        package var since: Date
        package var tick: Date
    }

    package struct Report: Sendable {
        package var ready: Bool
        package var live: Bool
        package var parts: [Part]
        package var stalled: [String]
    }

    /// A part silent this long is stalled: its loops tick every 250 ms, a batch's calls time out well before.
    package let stallLimit: TimeInterval
    private let parts = Mutex<[String: Part]>([:])

    package init(stallLimit: TimeInterval = 120) {
        self.stallLimit = stallLimit
    }

    package func set(_ name: String, ready: Bool, _ detail: String) {
        let now = Date()
        parts.withLock { parts in
            let changed = parts[name].map { $0.ready != ready } ?? true
            let since = changed ? now : parts[name]!.since
            parts[name] = Part(name: name, ready: ready, detail: detail, since: since, tick: now)
        }
        Meters.gauge("switchboard_ready", [], report().ready ? 1 : 0)
    }

    package func tick(_ name: String) {
        let now = Date()
        parts.withLock { parts in parts[name]?.tick = now }
    }

    package func remove(_ name: String) {
        parts.withLock { _ = $0.removeValue(forKey: name) }
        Meters.gauge("switchboard_ready", [], report().ready ? 1 : 0)
    }

    package func report(now: Date = Date()) -> Report {
        let list = parts.withLock { Array($0.values) }.sorted { $0.name < $1.name }
        let stalled = list.filter { now.timeIntervalSince($0.tick) > stallLimit }.map(\.name)
        return Report(ready: !list.isEmpty && list.allSatisfy(\.ready), live: stalled.isEmpty, parts: list, stalled: stalled)
    }
}
