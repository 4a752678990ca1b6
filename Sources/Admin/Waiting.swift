import Foundation
import JSONPath
import Rules
import Roles
import Store

/// A message of an HTTP endpoint that the REST delivery holds back (issue 26, "Visible"): rate limited, its
/// ticket locked, the host's circuit open, or waiting behind an earlier message of its ticket.
struct WaitingMessage: Sendable {
    var endpoint: String
    var conversationId: String
    /// The ticket at that endpoint (nil for a create: it has none yet).
    var ticket: String?
    var messageId: String
    var type: String
    /// ticket, endpoint, circuit, or behind (its ticket's earlier message waits).
    var scope: String
    var code: Int
    var reason: String
    /// Its oldest waiting entry read: since when it waits (at least).
    var since: Date
    var nextAttempt: Date?
    var waits: Int
    /// The message of the same ticket it waits behind (the first in line), if another waits too.
    var behind: String?
}

extension AdminServices {
    /// The messages that wait now, from the timeline: each outbound message whose newest answer is a
    /// `waiting` ack (none ok or refused since), newest first. Reads back as far as the longest wait budget
    /// of the configuration's REST endpoints, at most `maxMessages` messages; `complete` is false when that
    /// cap cut the reading short (older waits are then not listed).
    func waitingNow(now: Date = Date(), maxMessages: Int = 10_000) async throws -> (items: [WaitingMessage], complete: Bool, readBack: Date?) {
        let rest = config.endpoints.values.compactMap { e in e.rest.map { (e.name, $0) } }
        guard let budgetMs = rest.map({ $0.1.waitBudgetMs + $0.1.maxWaitMs }).max() else { return ([], true, nil) }
        let horizon = now.addingTimeInterval(-Double(budgetMs) / 1000)
        let restEndpoints = Set(rest.map(\.0))
        var answered = Set<String>()
        var found: [String: WaitingMessage] = [:]
        var order: [String] = []
        var oldest: Date?
        let complete = try await eachRecent(max: maxMessages) { g in
            guard let at = g.entries.first?.at else { return true }
            if at < horizon { return false }
            oldest = at
            for e in g.entries {
                guard let id = e.answers else { continue }
                switch e.kind {
                case .acked, .ackError: answered.insert(id)
                case .waiting:
                    guard !answered.contains(id), let endpoint = e.endpoint, restEndpoints.contains(endpoint) else { continue }
                    if found[id] != nil {
                        found[id]?.since = e.at
                    } else {
                        found[id] = Self.waiting(e, endpoint: endpoint, id: id)
                        order.append(id)
                    }
                default: continue
                }
            }
            return true
        }
        return (Self.lined(order.compactMap { found[$0] }), complete, oldest)
    }

    /// Reads the timeline newest first, a message (group) at a time, until `visit` says stop or the timeline
    /// ends (true), or `max` messages were read (false: cut short).
    func eachRecent(max: Int, _ visit: (TimelineGroup) throws -> Bool) async throws -> Bool {
        var cursor: Int64?
        var read = 0
        while true {
            let groups = try await store.recent(before: cursor, limit: 200, conversationId: nil)
            for g in groups {
                if read == max { return false }
                read += 1
                cursor = g.cursor
                if try !visit(g) { return true }
            }
            if groups.count < 200 { return true }
        }
    }

    /// One waiting entry as a waiting message: the ack's own fields where its body was kept, else what
    /// its detail says.
    static func waiting(_ e: TimelineEntry, endpoint: String, id: String) -> WaitingMessage {
        let body = e.body.flatMap { try? JSON.parse($0) }
        let text = body?["message"]?.scalarText ?? e.detail
        return WaitingMessage(
            endpoint: endpoint, conversationId: e.conversationId, ticket: body?["ticket"]?.scalarText, messageId: id,
            type: e.messageType ?? body?["operation"]?.scalarText ?? "?", scope: body?["scope"]?.scalarText ?? "?",
            code: body?["code"]?.scalarText.flatMap { Int($0) } ?? 0, reason: body?["reason"]?.scalarText ?? text, since: e.at,
            nextAttempt: body?["next_attempt"]?.scalarText.flatMap(Time.parse), waits: body?["waits"]?.scalarText.flatMap { Int($0) } ?? 1)
    }

    /// Per ticket of an endpoint, the one waiting longest is first in line; the others wait behind it.
    static func lined(_ items: [WaitingMessage]) -> [WaitingMessage] {
        var first: [String: WaitingMessage] = [:]
        for item in items {
            let key = "\(item.endpoint)\u{0}\(item.conversationId)"
            if let f = first[key], f.since <= item.since { continue }
            first[key] = item
        }
        return items.map { item in
            var item = item
            if let f = first["\(item.endpoint)\u{0}\(item.conversationId)"], f.messageId != item.messageId { item.behind = f.messageId }
            return item
        }
    }
}

extension AdminServices {
    /// Try-now: sends a waiting message at once. A copy of it (as the worker published it, with
    /// `Contract.Header.tryNow`) goes to its endpoint's outbound queue; the delivery sends that copy past
    /// whatever holds its ticket or endpoint and drops the waiting message when it comes back from its wait
    /// (one delivery serves an endpoint at a time). Only a message that waits now; on the audit.
    func tryNow(endpoint: String, messageId: String, who: AdminIdentity, now: Date = Date()) async throws -> String {
        let waiting = try await waitingNow(now: now)
        guard let w = waiting.items.first(where: { $0.endpoint == endpoint && $0.messageId == messageId }) else {
            throw ProblemError(status: .conflict, detail: "message \(messageId) does not wait at \(endpoint) now: it was sent or answered meanwhile")
        }
        guard var o = try await store.record(conversationId: w.conversationId)?.outbound[messageId]?.outbound else {
            throw ProblemError(status: .notFound, detail: "message \(messageId) is not in the store (removed by retention?)")
        }
        o.delayMs = 0
        let copy = {
            var c = Contract.outbound(o, at: now)
            c.message.properties.headers[Contract.Header.tryNow] = .int(Int64((now.timeIntervalSince1970 * 1000).rounded()))
            return c
        }()
        let publisher = ParkedPublisher(options: jobs.actions.options, logger: logger)
        let published = try await Offload.run { try publisher.publish(copy, refusal: "nothing was sent") }
        let detail = "\(published); the copy is sent at once, the waiting one is dropped when it comes back (it waited: \(w.reason))"
        let record = AuditRecord(
            at: now, who: who.name, action: "try-now", reason: "sent now from the endpoints page", conversationId: w.conversationId,
            endpoint: endpoint, messageId: messageId, parkedId: "", detail: detail)
        do {
            try await store.append(audit: record)
        } catch {
            logger.error("could not record an administrator's action", metadata: ["sb.message-id": "\(messageId)", "sb.error": "\(error)"])
        }
        logger.notice("waiting message sent now", metadata: ["sb.endpoint": "\(endpoint)", "sb.message-id": "\(messageId)", "sb.who": "\(who.name)"])
        return detail
    }
}
