import Foundation
import JSONPath
import Logging
import Rules
import Store
import Switchboard
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

/// Jobs by id. A job acts on exactly the ids it was given (the messages the user saw and chose), records
/// every message it replays or discards in the audit (on the conversation's timeline when it has one),
/// and stops between two messages when cancelled.
final class ParkedJobs: Sendable {
    private let jobs = Mutex([String: ParkedJob]())
    let queue: ParkedQueue
    let store: any AdminStore
    let config: SwitchboardConfig
    let logger: Logger

    init(queue: ParkedQueue, store: any AdminStore, config: SwitchboardConfig, logger: Logger) {
        self.queue = queue
        self.store = store
        self.config = config
        self.logger = logger
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
        enum Event: Sendable {
            case message(ParkedMessage, ParkedOutcome, String)
            case end(String?)
        }
        let (events, sink) = AsyncStream<Event>.makeStream()
        let jobId = job.id
        let action = job.action
        // Audit records are written in the order the messages were handled; the job ends after the last.
        Task {
            for await event in events {
                switch event {
                case .message(let message, let outcome, let detail):
                    await self.audit(message, outcome: outcome, detail: detail, who: who, reason: reason, action: action)
                    self.jobs.withLock { j in
                        j[jobId]?.done += 1
                        switch outcome {
                        case .replayed: j[jobId]?.replayed += 1
                        case .discarded: j[jobId]?.discarded += 1
                        case .failed: j[jobId]?.failed += 1
                        }
                        j[jobId]?.results.append((message.id, outcome.rawValue, detail))
                    }
                case .end(let error):
                    self.jobs.withLock { j in
                        guard var job = j[jobId] else { return }
                        job.state = error != nil ? "failed" : job.cancelled ? "cancelled" : "done"
                        job.error = error
                        j[jobId] = job
                    }
                }
            }
        }
        let queue = self.queue
        Task {
            do {
                try await Blocking.run {
                    try queue.act(replay: replay, ids: ids) { message, outcome, detail in
                        sink.yield(.message(message, outcome, detail))
                        return !(self.get(jobId)?.cancelled ?? true)
                    }
                }
                sink.yield(.end(nil))
            } catch {
                sink.yield(.end("\(error)"))
            }
            sink.finish()
        }
        return job
    }

    private func audit(_ m: ParkedMessage, outcome: ParkedOutcome, detail: String, who: String, reason: String, action: String) async {
        var conversation: String?
        if let endpoint = m.endpoint, let e = config.endpoints[endpoint], let body = try? JSON.parse(m.body),
            let ticket = e.ticketId.first(body)?.scalarText
        {
            conversation = try? await store.tickets(ticket, endpoints: [endpoint]).first?.conversationId
        }
        let record = AuditRecord(
            at: Date(), who: who, action: outcome == .failed ? "\(action)-failed" : action, reason: reason, conversationId: conversation,
            endpoint: m.endpoint, messageId: m.messageId, parkedId: m.id,
            detail: "\(detail); it was parked for: \(m.reason)")
        do {
            try await store.append(audit: record)
        } catch {
            logger.error("could not record an administrator's action", metadata: ["sb.parked-id": "\(m.id)", "sb.error": "\(error)"])
        }
        logger.notice("parked message \(outcome.rawValue)", metadata: [
            "sb.parked-id": "\(m.id)", "sb.message-id": "\(m.messageId ?? "-")", "sb.who": "\(who)",
        ])
    }
}
