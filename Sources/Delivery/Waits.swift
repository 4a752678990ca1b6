import Foundation
import Rules

/// The delivery's waits (issue 26, "Waits scoped like the limit"): which messages wait, where and how long,
/// scoped like the limit that made them wait. Pure bookkeeping (no broker, no clock of its own): the
/// delivery asks `plan` before each request and tells `hold` or `settled` after each answer.
///
/// - A per-ticket limit (Jira's `RateLimit-Reason: jira-per-issue-on-write`) holds that ticket: its later
///   messages wait behind the refused one, in the order they came, and every other ticket keeps flowing.
/// - An endpoint-wide limit (any other 429; a 503 with Retry-After) holds the endpoint: nothing is sent to
///   it before the answer's time.
/// - A host that takes no connection opens a circuit: the endpoint waits with exponential back-off; the
///   next message after the wait is the probe. Waiting here uses none of a retry policy's attempts.
///
/// A waiting message is published to one of the delay queues (`buckets`, a fixed ladder of TTLs) that
/// dead-letter back to the endpoint's outbound queue. A ticket's waiting messages all use one bucket (one
/// FIFO queue) while any of them waits, so they come back in the order they left; one that comes back
/// before an earlier one of its ticket waits again. The book lives in the delivery's memory (one consumer
/// per endpoint queue): after a restart the messages still waiting come back and are sent, and the order of
/// a ticket's messages is kept from then on.
struct WaitBook {
    enum Scope: String, Sendable { case ticket, endpoint, circuit }

    struct Hold: Equatable {
        var until: Date
        var scope: Scope
        /// The answer's status code (0: no connection).
        var code: Int
        /// For people: "429 per issue", "429", "503", "circuit open: connection refused".
        var reason: String
        /// Held for a refusal the rules retry (`hold_ticket_on`): ends when a resend of the ticket goes
        /// through (`released`), or at `until`; the resends themselves pass it.
        var lock = false
    }

    /// One ticket's waiting messages: each message id with its place (first seen first), and the bucket
    /// they all wait in.
    struct Line {
        var bucketMs: Int
        var places: [String: (seq: Int, seen: Date)] = [:]
        var hold: Hold?
        var first: String? { places.min { $0.value.seq < $1.value.seq }?.key }
    }

    enum Plan: Equatable {
        case send
        case wait(bucketMs: Int, reason: String)
    }

    /// The delay queues' TTLs, shortest first.
    let buckets: [Int]
    /// The longest single wait: a longer Retry-After is waited out in steps of at most this.
    let maxWaitMs: Int
    private(set) var endpointHold: Hold?
    private(set) var connectFailures = 0
    private(set) var tickets: [String: Line] = [:]
    private var nextSeq = 0

    init(buckets: [Int] = RestSettings.waitBuckets, maxWaitMs: Int = 600_000) {
        self.buckets = buckets.sorted()
        self.maxWaitMs = maxWaitMs
    }

    /// The shortest bucket at least `ms` long (the longest when none is).
    func bucket(for ms: Int) -> Int {
        buckets.first { $0 >= ms } ?? buckets.last ?? ms
    }

    var circuitOpen: Bool { endpointHold?.scope == .circuit }

    /// Tickets with messages waiting, for the metrics and the admin.
    var waitingTickets: Int { tickets.count }

    /// Before a request: send the message now, or let it wait (a hold is on, or an earlier message of its
    /// ticket still waits). A retry policy's resend (`resend`) passes its ticket's lock: it is the refused
    /// message again, the one the others wait behind.
    mutating func plan(ticket: String?, id: String, now: Date, resend: Bool = false) -> Plan {
        if resend, let ticket, let h = tickets[ticket]?.hold, h.lock, h.until > now, endpointHold == nil { return .send }
        if let h = endpointHold, h.until <= now { endpointHold = nil }
        guard let ticket, var line = tickets[ticket] else {
            if let h = endpointHold {
                let bucketMs = bucket(for: Self.ms(h.until.timeIntervalSince(now)))
                if let ticket {
                    // Its ticket's later messages must come back after it: they join it in one bucket.
                    var line = Line(bucketMs: bucketMs)
                    line.places[id] = (take(), now)
                    tickets[ticket] = line
                }
                return .wait(bucketMs: bucketMs, reason: h.reason)
            }
            return .send
        }
        if let h = line.hold, h.until <= now { line.hold = nil }
        // A message lost from its delay queue (purged) would hold its ticket for ever: one not seen for
        // three rounds of its bucket and a minute is let go.
        let stale = now.addingTimeInterval(-Double(line.bucketMs * 3) / 1000 - 60)
        line.places = line.places.filter { $0.key == id || $0.value.seen > stale }
        let seq = line.places[id]?.seq ?? take()
        line.places[id] = (seq, now)
        defer { tickets[ticket] = line }
        let held = line.hold ?? endpointHold
        if held == nil, line.first == id { return .send }
        let reason = held?.reason ?? "behind \(line.first ?? "an earlier message") of ticket \(ticket)"
        return .wait(bucketMs: line.bucketMs, reason: reason)
    }

    /// An answer that says to wait: the hold it makes, and where the answered message waits (in its
    /// ticket's place, first).
    mutating func hold(ticket: String?, id: String, scope: Scope, code: Int, waitMs: Int?, reason: String, now: Date, jitter: Double = 0) -> Plan {
        let ms: Int
        switch scope {
        case .circuit:
            connectFailures += 1
            let backoff = Double(1_000 << min(connectFailures - 1, 20)) * (1 + jitter)
            ms = min(Int(backoff), maxWaitMs)
        case .ticket, .endpoint:
            // No Retry-After: exponential back-off with jitter from one second.
            ms = min(waitMs ?? Int(1_000 * (1 + jitter)), maxWaitMs)
        }
        let h = Hold(until: now.addingTimeInterval(Double(ms) / 1000), scope: scope, code: code, reason: reason)
        let bucketMs = bucket(for: ms)
        if scope != .ticket, endpointHold.map({ $0.until < h.until }) ?? true { endpointHold = h }
        guard let ticket else { return .wait(bucketMs: bucketMs, reason: reason) }
        var line = tickets[ticket] ?? Line(bucketMs: bucketMs)
        if scope == .ticket, line.hold.map({ $0.until < h.until }) ?? true { line.hold = h }
        if line.places[id] == nil { line.places[id] = (take(), now) } else { line.places[id]?.seen = now }
        tickets[ticket] = line
        return .wait(bucketMs: line.bucketMs, reason: reason)
    }

    /// An answer that does not say to wait (or a message given up): it leaves its ticket's line; the
    /// endpoint answered, so a circuit closes.
    mutating func settled(ticket: String?, id: String, answered: Bool, now: Date) {
        if answered {
            connectFailures = 0
            if endpointHold?.scope == .circuit { endpointHold = nil }
        }
        guard let ticket, var line = tickets[ticket] else { return }
        line.places[id] = nil
        if let h = line.hold, h.until <= now { line.hold = nil }
        if line.places.isEmpty && line.hold == nil { tickets[ticket] = nil } else { tickets[ticket] = line }
    }

    /// A refusal that holds its ticket for the rules' retry (`hold_ticket_on`): later messages of the
    /// ticket wait (in a 5 s queue) until `released` or `holdMs` passes.
    mutating func lock(ticket: String, code: Int, reason: String, holdMs: Int, now: Date) {
        var line = tickets[ticket] ?? Line(bucketMs: bucket(for: 5_000))
        line.hold = Hold(until: now.addingTimeInterval(Double(holdMs) / 1000), scope: .ticket, code: code, reason: reason, lock: true)
        tickets[ticket] = line
    }

    /// A resend of a locked ticket went through: its later messages may follow.
    mutating func released(ticket: String, now: Date) {
        guard var line = tickets[ticket], line.hold?.lock == true else { return }
        line.hold = nil
        if line.places.isEmpty { tickets[ticket] = nil } else { tickets[ticket] = line }
    }

    /// A message an administrator sent at once (try-now) went through: the holds it was sent past, its
    /// ticket's and the endpoint's, are over.
    mutating func triedThrough(ticket: String?) {
        if endpointHold?.scope != .circuit { endpointHold = nil }
        guard let ticket, var line = tickets[ticket] else { return }
        line.hold = nil
        if line.places.isEmpty { tickets[ticket] = nil } else { tickets[ticket] = line }
    }

    /// Forgets tickets with nothing waiting whose hold has passed.
    mutating func sweep(now: Date) {
        tickets = tickets.filter { !($0.value.places.isEmpty && ($0.value.hold.map { $0.until <= now } ?? true)) }
        if let h = endpointHold, h.until <= now { endpointHold = nil }
    }

    /// The hold a message waits for (its ticket's, else the endpoint's), for an ack when its budget is spent.
    func holdOf(ticket: String?) -> Hold? {
        ticket.flatMap { tickets[$0]?.hold } ?? endpointHold
    }

    private mutating func take() -> Int {
        nextSeq += 1
        return nextSeq
    }

    static func ms(_ seconds: TimeInterval) -> Int { max(0, Int((seconds * 1000).rounded(.up))) }
}
