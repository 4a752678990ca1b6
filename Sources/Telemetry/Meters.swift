import Foundation
import Metrics
import Rules
import Store

/// What Switchboard counts, measures and times, through swift-metrics: the process chooses the backend
/// (Prometheus, in the Operations module); without one (unit tests, benchmarks) every call is a no-op.
/// Names follow Prometheus: a `switchboard_` prefix, base units (seconds), `_total` on counters, and no
/// ticket, conversation or message id in any label (endpoints, rules, roles and reasons are few).
package enum Meters {
    package enum Kind: String, Sendable { case counter, gauge, histogram }

    /// One metric family: its name, type and the HELP text the exposition gives it.
    package struct Family: Sendable {
        package var name: String
        package var kind: Kind
        package var help: String
        package var labels: [String]
    }

    /// Every family Switchboard exports (the Operations module adds HELP lines from it; docs and the tests
    /// check against it). Adding a metric means adding it here.
    package static let families: [Family] = [
        .init(name: "switchboard_build_info", kind: .gauge, help: "Always 1; the version of this process.", labels: ["version", "swift"]),
        .init(name: "switchboard_config_info", kind: .gauge, help: "Always 1; the SHA-256 of the configuration files this process loaded.", labels: ["hash"]),
        .init(name: "switchboard_intake_messages_total", kind: .counter,
              help: "Messages intake took from an endpoint's inbound queue, by outcome: routed to a work partition, or parked.",
              labels: ["endpoint", "kind", "outcome"]),
        .init(name: "switchboard_worker_messages_total", kind: .counter,
              help: "Messages a worker decided, by outcome: applied, duplicate (a resend or redelivery already applied), or parked.",
              labels: ["endpoint", "outcome"]),
        .init(name: "switchboard_parked_messages_total", kind: .counter,
              help: "Messages parked in sb.parked, by the stage that parked them and the kind of reason.", labels: ["endpoint", "stage", "reason"]),
        .init(name: "switchboard_rule_matches_total", kind: .counter, help: "Committed decisions in which a rule matched, by rule.", labels: ["rule"]),
        .init(name: "switchboard_outbound_messages_total", kind: .counter,
              help: "Outbound messages committed for sending, by target endpoint and message type (delayed ones included).",
              labels: ["target", "type"]),
        .init(name: "switchboard_acks_total", kind: .counter,
              help: "Acknowledgements received, by the endpoint that sent them and outcome: ok, error (a rule handled it), unhandled (marked failed), waiting (the REST delivery waits with the message).",
              labels: ["endpoint", "outcome"]),
        .init(name: "switchboard_delays_scheduled_total", kind: .counter,
              help: "Outbound messages sent through a delay queue, by target.", labels: ["target"]),
        .init(name: "switchboard_timers_scheduled_total", kind: .counter, help: "Timers started by rules.", labels: []),
        .init(name: "switchboard_timers_fired_total", kind: .counter, help: "Timers that came due and were decided.", labels: []),
        .init(name: "switchboard_message_latency_seconds", kind: .histogram,
              help: "From intake receiving a message to its decision committed with its outbound messages (published at once after).",
              labels: []),
        .init(name: "switchboard_batch_duration_seconds", kind: .histogram,
              help: "Time to handle one batch of deliveries (decide and commit), by role.", labels: ["role"]),
        .init(name: "switchboard_batch_messages", kind: .histogram, help: "Deliveries per batch, by role.", labels: ["role"]),
        .init(name: "switchboard_batches_held_total", kind: .counter,
              help: "Pauses a loop made holding a batch instead of giving it back to its queue, by role and cause (handler: the store failed or answered late; confirm_timeout: the broker confirmed late; refused: the broker nacked outgoing messages).",
              labels: ["role", "cause"]),
        .init(name: "switchboard_parked_stored", kind: .gauge,
              help: "Parked messages held in the store's parked table (what the Parked page lists), from the store role.", labels: []),
        .init(name: "switchboard_batch_retries_total", kind: .counter,
              help: "Batch attempts repeated because a commit went stale (another writer changed the conversation).", labels: []),
        .init(name: "switchboard_store_request_duration_seconds", kind: .histogram,
              help: "Store requests by operation and backend (sqlite, postgres, or remote: a worker's round trip to the store role).",
              labels: ["op", "backend"]),
        .init(name: "switchboard_store_commits_total", kind: .counter,
              help: "Commits by outcome: committed, stale (retried), duplicate (applied before), conflict (message_id reused).",
              labels: ["backend", "outcome"]),
        .init(name: "switchboard_store_errors_total", kind: .counter, help: "Store requests that failed, by operation and backend.", labels: ["op", "backend"]),
        .init(name: "switchboard_broker_connected", kind: .gauge, help: "1 while a consumer loop (intake, store, worker-N) holds a broker connection.", labels: ["loop"]),
        .init(name: "switchboard_broker_blocked", kind: .gauge, help: "1 while the broker blocks a consumer loop's connection from publishing (connection.blocked: a memory or disk alarm).", labels: ["loop"]),
        .init(name: "switchboard_broker_reconnects_total", kind: .counter,
              help: "Broker connections re-established after a loss, by role.", labels: ["role"]),
        .init(name: "switchboard_partitions_owned", kind: .gauge, help: "Work partitions this process consumes.", labels: []),
        .init(name: "switchboard_workers_live", kind: .gauge, help: "Worker processes the store sees alive (as this process last heard).", labels: []),
        .init(name: "switchboard_intake_queues_owned", kind: .gauge, help: "Inbound queues this process's intake consumes.", labels: []),
        .init(name: "switchboard_intakes_live", kind: .gauge, help: "Intake processes the store sees alive (as this process last heard).", labels: []),
        .init(name: "switchboard_ready", kind: .gauge, help: "1 while this process is ready (the same as /health/ready).", labels: []),
        .init(name: "switchboard_queue_messages", kind: .gauge,
              help: "Messages in a Switchboard queue (ready and unacknowledged), read from the broker.", labels: ["queue"]),
        .init(name: "switchboard_queue_consumers", kind: .gauge, help: "Consumers of a Switchboard queue, read from the broker.", labels: ["queue"]),
        .init(name: "switchboard_endpoint_messages", kind: .gauge,
              help: "Messages waiting in an endpoint's queue: direction in (sb.in.<endpoint>) or out (sb.out.<endpoint>).",
              labels: ["endpoint", "direction"]),
        .init(name: "switchboard_endpoint_backlog_threshold", kind: .gauge,
              help: "The configured backlog above which an endpoint's queue is alerted on (endpoints.<name>.backlog_threshold).",
              labels: ["endpoint"]),
        .init(name: "switchboard_endpoint_oldest_message_age_seconds", kind: .gauge,
              help: "Age of the oldest message waiting in an endpoint's queue (direction in or out; 0 when empty), from the management API.",
              labels: ["endpoint", "direction"]),
        .init(name: "switchboard_queue_read_errors_total", kind: .counter,
              help: "Failed attempts to read queue depths or ages from the broker, by source (amqp, management).", labels: ["source"]),
        .init(name: "switchboard_ingress_requests_total", kind: .counter,
              help: "Webhook requests the ingress answered, by endpoint and outcome: accepted, parked (202 with the parked id), unauthorized, too_large, unknown_endpoint, unavailable (503: the broker did not take it).",
              labels: ["endpoint", "outcome"]),
        .init(name: "switchboard_ingress_seconds", kind: .histogram,
              help: "Time to answer an accepted or parked webhook request, the broker's confirm included, by endpoint.", labels: ["endpoint"]),
        .init(name: "switchboard_rest_requests_total", kind: .counter,
              help: "Requests the delivery role sent to REST endpoints, by endpoint and HTTP status code (0: no answer: connection failure or timeout).",
              labels: ["endpoint", "code"]),
        .init(name: "switchboard_rest_request_seconds", kind: .histogram,
              help: "Time from sending a REST request to its answer (or failure), by endpoint.", labels: ["endpoint"]),
        .init(name: "switchboard_echoes_total", kind: .counter,
              help: "Inbound messages recognised as our own writes coming back (the endpoint's echo conditions): on the timeline, no rule ran.",
              labels: ["endpoint"]),
        .init(name: "switchboard_rest_waits_total", kind: .counter,
              help: "Outbound REST messages set to wait in a delay queue, by endpoint and scope: ticket (a per-issue limit), endpoint (a 429 or 503 for the whole endpoint), circuit (no connection), behind (held by an earlier wait).",
              labels: ["endpoint", "scope"]),
        .init(name: "switchboard_rest_waiting_tickets", kind: .gauge,
              help: "Tickets of a REST endpoint with messages waiting (a per-issue limit, or behind an earlier message of theirs).", labels: ["endpoint"]),
        .init(name: "switchboard_rest_circuit_open", kind: .gauge,
              help: "1 while a REST endpoint's circuit is open (its host took no connection; messages wait with back-off), else 0.", labels: ["endpoint"]),
    ]

    package static let version = "0.12.0"

    // MARK: - Recording

    package static func count(_ name: String, _ labels: [(String, String)] = [], by n: Int = 1) {
        guard n >= 0 else { return }
        Counter(label: name, dimensions: labels).increment(by: n)
    }

    package static func gauge(_ name: String, _ labels: [(String, String)] = [], _ value: Double) {
        Gauge(label: name, dimensions: labels).record(value)
    }

    package static func seconds(_ name: String, _ labels: [(String, String)] = [], _ seconds: Double) {
        Metrics.Timer(label: name, dimensions: labels).recordNanoseconds(Int64(max(0, seconds) * 1_000_000_000))
    }

    package static func value(_ name: String, _ labels: [(String, String)] = [], _ value: Int) {
        Recorder(label: name, dimensions: labels, aggregate: true).record(value)
    }

    /// Times `body` into a duration histogram.
    package static func time<T>(_ name: String, _ labels: [(String, String)], _ body: () throws -> T) rethrows -> T {
        let start = DispatchTime.now().uptimeNanoseconds
        defer {
            Metrics.Timer(label: name, dimensions: labels)
                .recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - start))
        }
        return try body()
    }

    /// `worker-3` -> `worker`: roles as labels, not threads.
    package static func role(_ loopName: String) -> String {
        String(loopName.split(separator: "-").first ?? Substring(loopName))
    }

    /// Known series at zero from the start, so `rate()` and alerts see them before the first event
    /// (Prometheus' advice for label values known in advance), and the info gauges.
    package static func start(config: SwitchboardConfig) {
        gauge("switchboard_build_info", [("version", version), ("swift", swiftVersion)], 1)
        gauge("switchboard_config_info", [("hash", String(config.source.contentHash.prefix(12)))], 1)
        for e in config.endpointNames {
            for outcome in ["applied", "duplicate", "parked"] { count("switchboard_worker_messages_total", [("endpoint", e), ("outcome", outcome)], by: 0) }
            for outcome in ["ok", "error", "unhandled", "waiting"] { count("switchboard_acks_total", [("endpoint", e), ("outcome", outcome)], by: 0) }
        }
        for e in config.endpoints.values {
            gauge("switchboard_endpoint_backlog_threshold", [("endpoint", e.name)], Double(e.backlogThreshold ?? config.admin?.warnDepth ?? 1000))
        }
        for r in config.rules { count("switchboard_rule_matches_total", [("rule", r.name)], by: 0) }
        for e in config.endpointNames { count("switchboard_delays_scheduled_total", [("target", e)], by: 0) }
        for name in ["switchboard_batch_retries_total", "switchboard_timers_scheduled_total", "switchboard_timers_fired_total"] {
            count(name, by: 0)
        }
    }

    static var swiftVersion: String {
        #if compiler(>=6.3)
            "6.3"
        #elseif compiler(>=6.2)
            "6.2"
        #else
            "6"
        #endif
    }
}

/// The roles' store (in process or remote), with every request timed and every commit's outcome counted
/// (`backend` tells which store).
package struct MeteredStore: FleetStore {
    package let base: FleetStore
    package let backend: String

    package init(_ base: FleetStore, backend: String) {
        self.base = base
        self.backend = backend
        Meters.count("switchboard_store_errors_total", [("op", "commit"), ("backend", backend)], by: 0)
    }

    /// One store request, timed under `op`; its error counted.
    package static func time<T>(_ op: String, backend: String, _ body: () throws -> T) throws -> T {
        do {
            return try Meters.time("switchboard_store_request_duration_seconds", [("op", op), ("backend", backend)], body)
        } catch {
            Meters.count("switchboard_store_errors_total", [("op", op), ("backend", backend)])
            throw error
        }
    }

    private func call<T>(_ op: String, _ body: () throws -> T) throws -> T {
        try Self.time(op, backend: backend, body)
    }

    package func find(_ refs: [TicketRef]) throws -> ConversationSnapshot? { try call("find") { try base.find(refs) } }
    package func find(batch: [[TicketRef]]) throws -> [ConversationSnapshot?] { try call("find") { try base.find(batch: batch) } }
    package func outbound(messageIds: [String]) throws -> [StoredOutbound?] { try call("outbound") { try base.outbound(messageIds: messageIds) } }
    package func conversations(ids: [String]) throws -> [ConversationSnapshot?] { try call("conversation") { try base.conversations(ids: ids) } }
    package func commit(_ commits: [Commit]) throws -> [CommitOutcome] {
        let outcomes = try call("commit") { try base.commit(commits) }
        count(outcomes)
        return outcomes
    }
    /// The base's own group commit (one transaction for several callers where it can), timed as one
    /// commit request; each caller's error counted.
    package func commit(groups: [[Commit]]) -> [Result<[CommitOutcome], any Error>] {
        let results = Meters.time("switchboard_store_request_duration_seconds", [("op", "commit"), ("backend", backend)]) {
            base.commit(groups: groups)
        }
        for r in results {
            switch r {
            case .success(let outcomes): count(outcomes)
            case .failure: Meters.count("switchboard_store_errors_total", [("op", "commit"), ("backend", backend)])
            }
        }
        return results
    }
    private func count(_ outcomes: [CommitOutcome]) {
        var by: [String: Int] = [:]
        for o in outcomes {
            switch o {
            case .committed: by["committed", default: 0] += 1
            case .stale: by["stale", default: 0] += 1
            case .duplicate: by["duplicate", default: 0] += 1
            case .conflict: by["conflict", default: 0] += 1
            }
        }
        for (outcome, n) in by { Meters.count("switchboard_store_commits_total", [("backend", backend), ("outcome", outcome)], by: n) }
    }
    package func heartbeat(member: String, ttl: TimeInterval) throws -> [String] { try call("heartbeat") { try base.heartbeat(member: member, ttl: ttl) } }
    package func leave(member: String) throws { try call("leave") { try base.leave(member: member) } }
}
