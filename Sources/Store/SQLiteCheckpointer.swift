import Foundation
import GRDB
import Synchronization

/// Copies the WAL back into the database file from a thread of its own, so commits do not wait for a
/// checkpoint's copying and `fdatasync`s (inline, they were a fifth of the commit path's time and its
/// latency spikes). A passive checkpoint never blocks the writer or readers, but while commits keep
/// coming it never reaches the WAL's end, and only a WAL checkpointed to its end starts over from its
/// beginning. So once the WAL holds `restartPages`, the few frames appended since the last pass are
/// checkpointed on the writer connection between two commits: the next commit starts the WAL over.
/// The writer's own automatic checkpoint stays on (`WALLimits.backstopPages`), should this thread fall
/// behind or not run at all. The thread is blocking work of its own (SQLite's calls and the waits between
/// them), so it runs on a thread: the store role's `RoleService` (Wiring's Stores.open), never a pool's task.
final class Checkpointer: Sendable {
    private let restartPages: Int
    private static let interval: TimeInterval = 0.02
    private let commits = Atomic<UInt64>(0)
    private let stopped = Atomic<Bool>(false)
    private let wake = DispatchSemaphore(value: 0)
    private let connection: DatabaseQueue
    private let writer: DatabasePool

    init(path: String, writer: DatabasePool, restartPages: Int) throws {
        self.restartPages = restartPages
        var config = Configuration()
        config.label = "switchboard-checkpoint"
        config.busyMode = .timeout(10)
        connection = try DatabaseQueue(path: path, configuration: config)
        self.writer = writer
    }

    func committed() {
        commits.add(1, ordering: .relaxed)
    }

    func stop() {
        stopped.store(true, ordering: .relaxed)
        wake.signal()
    }

    /// The checkpoint loop, on the caller's thread, until `stop()` or `running` says no (checked at
    /// least every `interval`).
    func run(while running: () -> Bool) {
        var seen: UInt64 = 0
        while !stopped.load(ordering: .relaxed), running() {
            _ = wake.wait(timeout: .now() + Self.interval)
            let now = commits.load(ordering: .relaxed)
            guard now != seen, !stopped.load(ordering: .relaxed) else { continue }
            seen = now
            // Failing is harmless: the next round (or the writer's backstop) catches up.
            guard let pass = try? connection.writeWithoutTransaction({ db in try db.checkpoint(.passive) }) else { continue }
            if pass.walFrameCount >= restartPages {
                _ = try? writer.writeWithoutTransaction { db in try db.checkpoint(.passive) }
            }
        }
    }
}
