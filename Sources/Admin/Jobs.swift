import Foundation
import JSONPath
import Logging
import Rules
import ServiceLifecycle
import Store
import Roles
import Synchronization

/// A replay or discard of chosen parked messages, running in the background with its progress.
struct ParkedJob: Sendable {
    var id: String
    var action: String
    var who: String
    var reason: String
    var total: Int
    var done = 0
    var replayed = 0
    var discarded = 0
    var failed = 0
    /// running, done, cancelled, failed
    var state = "running"
    var error: String?
    var cancelled = false
    var startedAt = Date()
    var results: [(id: String, outcome: String, detail: String)] = []

    /// Chosen messages the pass did not meet (replayed meanwhile by someone else, or gone).
    var missing: Int { state == "running" ? 0 : max(0, total - done) }

    var json: JSONText {
        .object([
            "id": .string(id), "action": .string(action), "who": .string(who), "reason": .string(reason), "state": .string(state),
            "total": .int(total), "done": .int(done), "replayed": .int(replayed), "discarded": .int(discarded), "failed": .int(failed),
            "missing": .int(missing), "error": .optional(error), "started_at": .string(Time.iso(startedAt)),
            "results": .array(results.map { .object(["id": .string($0.id), "outcome": .string($0.outcome), "detail": .string($0.detail)]) }),
        ])
    }
}

/// Jobs by id. A job acts on exactly the ids it was given (the messages the user saw and chose), in the
/// order they were parked, records every message it replays or discards in the audit (`ParkedActions`),
/// and stops between two messages when cancelled.
///
/// The jobs run inside this service (in the admin's service group), not as loose tasks: at graceful
/// shutdown it takes no new job, asks the running ones to stop after the message at hand (the rest stay
/// parked, as they were) and returns once they have.
final class ParkedJobs: Service {
    private let jobs = Mutex([String: ParkedJob]())
    private let work: AsyncStream<@Sendable () async -> Void>
    private let submit: AsyncStream<@Sendable () async -> Void>.Continuation
    let actions: ParkedActions

    init(actions: ParkedActions) {
        self.actions = actions
        (work, submit) = AsyncStream.makeStream(of: (@Sendable () async -> Void).self)
    }

    func run() async {
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                for await job in work { group.addTask { await job() } }
            }
        } onGracefulShutdown: {
            self.submit.finish()
            self.jobs.withLock { j in
                for id in j.keys where j[id]?.state == "running" { j[id]?.cancelled = true }
            }
        }
    }

    func get(_ id: String) -> ParkedJob? { jobs.withLock { $0[id] } }

    func cancel(_ id: String) -> ParkedJob? {
        jobs.withLock {
            $0[id]?.cancelled = true
            return $0[id]
        }
    }

    func start(replay: Bool, ids: Set<String>, who: String, reason: String) -> ParkedJob {
        let job = ParkedJob(id: Random.token(bytes: 8), action: replay ? "replay" : "discard", who: who, reason: reason, total: ids.count)
        jobs.withLock { j in
            // Finished jobs are kept for their pages a while, not forever.
            if j.count > 200 { j = j.filter { $0.value.state == "running" || Date().timeIntervalSince($0.value.startedAt) < 3600 } }
            j[job.id] = job
        }
        let jobId = job.id
        let actions = self.actions
        let submitted = submit.yield { [self] in
            var failure: String?
            do {
                try await actions.run(replay: replay, ids: Array(ids), who: who, reason: reason) { message, outcome, detail in
                    self.jobs.withLock { j in
                        j[jobId]?.done += 1
                        switch outcome {
                        case .replayed: j[jobId]?.replayed += 1
                        case .discarded: j[jobId]?.discarded += 1
                        case .failed: j[jobId]?.failed += 1
                        }
                        j[jobId]?.results.append((message.id, outcome.rawValue, detail))
                    }
                    return !(self.get(jobId)?.cancelled ?? true)
                }
            } catch {
                failure = "\(error)"
            }
            self.finish(jobId, failure: failure)
        }
        if case .terminated = submitted {
            finish(jobId, failure: "the admin is shutting down: nothing was done, every chosen message is still parked")
        }
        return get(jobId) ?? job
    }

    private func finish(_ jobId: String, failure: String?) {
        jobs.withLock { j in
            guard var job = j[jobId] else { return }
            job.state = failure != nil ? "failed" : job.cancelled ? "cancelled" : "done"
            job.error = failure
            j[jobId] = job
        }
    }
}
