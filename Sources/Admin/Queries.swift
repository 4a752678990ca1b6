import Foundation
import Hummingbird
import Rules
import Store
import Roles

/// A feed filter, from the query string of the page or the API.
struct FeedFilter: Sendable {
    var endpoint: String?
    var state: String?
    var rule: String?
    var ticket: String?
    var since: Date?
    var until: Date?
    var before: Int64?
    var limit = 50

    init() {}

    init(_ q: Request, config: SwitchboardConfig) throws {
        func value(_ name: String) -> String? {
            guard let v = q.uri.queryParameters.get(name)?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
            return v
        }
        endpoint = value("endpoint")
        if let e = endpoint, config.endpoints[e] == nil {
            throw ProblemError(status: .badRequest, detail: "endpoint '\(e)' is not configured (known: \(config.endpointNames.joined(separator: ", ")))")
        }
        state = value("state")
        if let s = state, !FeedItem.states.contains(s) {
            throw ProblemError(status: .badRequest, detail: "state '\(s)' is not one of \(FeedItem.states.joined(separator: ", "))")
        }
        rule = value("rule")
        ticket = value("ticket")
        func time(_ name: String) throws -> Date? {
            guard let v = value(name) else { return nil }
            guard let d = Time.parse(v) else { throw ProblemError(status: .badRequest, detail: "\(name) '\(v)' is not an ISO 8601 time (2026-12-01T08:00:00Z)") }
            return d
        }
        since = try time("since")
        until = try time("until")
        if let v = value("before") {
            guard let n = Int64(v), n > 0 else { throw ProblemError(status: .badRequest, detail: "before '\(v)' is not a cursor from an earlier answer") }
            before = n
        }
        if let v = value("limit") {
            guard let n = Int(v), (1...500).contains(n) else { throw ProblemError(status: .badRequest, detail: "limit '\(v)' is not a number from 1 to 500") }
            limit = n
        }
    }

    var query: String {
        var parts: [String] = []
        func add(_ k: String, _ v: String?) {
            if let v { parts.append("\(k)=\(v.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? v)") }
        }
        add("endpoint", endpoint)
        add("state", state)
        add("rule", rule)
        add("ticket", ticket)
        add("since", since.map(Time.iso))
        add("until", until.map(Time.iso))
        add("limit", limit == 50 ? nil : String(limit))
        return parts.joined(separator: "&")
    }

    func admits(_ item: FeedItem) -> Bool {
        if let endpoint, item.endpoint != endpoint { return false }
        if let state, item.state != state { return false }
        if let rule, !item.rules.contains(rule) { return false }
        if let since, item.at < since { return false }
        if let until, item.at > until { return false }
        return true
    }
}

extension AdminServices {
    /// The newest messages that pass the filter, and the cursor for the page after. The timeline is read
    /// newest first in pages of 200 messages, at most 10,000 messages per request.
    func feed(_ f: FeedFilter) async throws -> (items: [FeedItem], next: Int64?) {
        var conversation: String?
        if let ticket = f.ticket {
            guard let hit = try await store.tickets(ticket, endpoints: config.endpointNames).first else { return ([], nil) }
            conversation = hit.conversationId
        }
        var items: [FeedItem] = []
        var cursor = f.before
        var next: Int64?
        scan: for _ in 0..<50 {
            let groups = try await store.recent(before: cursor, limit: 200, conversationId: conversation)
            for g in groups {
                let item = FeedItem(g)
                cursor = g.cursor
                if let since = f.since, item.at < since { break scan }
                guard f.admits(item) else { continue }
                items.append(item)
                if items.count == f.limit {
                    next = g.cursor
                    break scan
                }
            }
            if groups.count < 200 { break }
        }
        if f.before == nil, f.ticket == nil, f.rule == nil, f.state == nil || f.state == "parked" {
            // Parked messages have no timeline (most never reached a conversation): they come from the store's parked table.
            if let parked = try? await store.parked(ParkedQuery(limit: 1000, excerpt: 0)) {
                items += parked.map { FeedItem(parked: ParkedMessage(row: $0, switchboardUser: switchboardUser)) }.filter(f.admits)
                items.sort { $0.at > $1.at }
                if items.count > f.limit { items = Array(items.prefix(f.limit)) }
            }
        }
        return (items, next)
    }

    /// Depths and consumers exactly from the broker (AMQP); the head messages' timestamps, for the oldest
    /// message's age, from the management API when it answers.
    func health() async -> HealthReport {
        let names = config.endpointNames.flatMap { [Contract.inboundQueue($0), Contract.outboundQueue($0)] }
            + config.outboundDelays.sorted().map { Contract.delayQueue(forExchange: Contract.outboundDelayExchange($0)) }
            + config.timerDelays.sorted().map { Contract.delayQueue(forExchange: Contract.timerDelayExchange($0)) }
        var queues: [String: QueueInfo]?
        var brokerError: String?
        var ageError: String?
        do {
            let states = try await Offload.run { [queueStates] in try queueStates.read(names) }
            queues = states.reduce(into: [:]) { $0[$1.key] = QueueInfo(name: $1.key, messages: $1.value.messages, consumers: $1.value.consumers) }
        } catch {
            brokerError = "\(error)"
        }
        if queues != nil {
            do {
                for (name, info) in try await management.queues() where queues?[name] != nil {
                    queues?[name]?.headTimestamp = info.headTimestamp
                }
            } catch let e as ProblemError {
                ageError = e.detail
            } catch {
                ageError = "RabbitMQ's management API at \(management.redacted): \(error.localizedDescription)"
            }
        }
        let parked = try? await store.parkedCounts()
        let now = Date()
        let longest = Double(config.outboundDelays.max() ?? 0) / 1000
        let delayed = longest > 0 ? try? await store.delayedPending(now: now, within: longest + 60) : [:]
        var report = HealthReport.assess(
            config: config, settings: settings, queues: queues, brokerError: brokerError, parked: parked, delayed: delayed, now: now)
        report.ageError = ageError
        return report
    }

    /// The parked messages, grouped by reason; only one group's when `group` is set.
    /// The parked messages (the oldest 1,000 of them, or of one reason group, after `after`), with bodies
    /// cut to an excerpt, and the counts by reason group.
    func parkedList(group: String?, after: Int64 = 0) async throws -> (total: Int, groups: [(reason: String, count: Int)], messages: [ParkedMessage]) {
        let counts = try await store.parkedCounts()
        let rows = try await store.parked(ParkedQuery(group: group, after: after, limit: 1000, excerpt: ParkedMessage.excerptBytes))
        return (counts.total, counts.groups, rows.map { ParkedMessage(row: $0, switchboardUser: switchboardUser) })
    }

    /// One parked message, its body up to `ParkedMessage.shownBytes`.
    func parkedMessage(_ id: String) async throws -> ParkedMessage {
        guard let row = try await store.parked(ParkedQuery(ids: [id], limit: 1, excerpt: ParkedMessage.shownBytes)).first else {
            throw ProblemError(status: .notFound, detail: "no parked message \(id) (replayed or discarded since)")
        }
        return ParkedMessage(row: row, switchboardUser: switchboardUser)
    }

    func conversation(_ id: String) async throws -> ConversationRecord {
        guard let r = try await store.record(conversationId: id) else {
            throw ProblemError(status: .notFound, detail: "no conversation \(id)")
        }
        return r
    }

    func startJob(action: String?, ids: [String], reason: String?, identity: AdminIdentity) async throws -> ParkedJob {
        guard let action, action == "replay" || action == "discard" else {
            throw ProblemError(status: .badRequest, detail: "action must be replay or discard")
        }
        let ids = Set(ids.filter { !$0.isEmpty })
        guard !ids.isEmpty else { throw ProblemError(status: .badRequest, detail: "choose at least one parked message (ids)") }
        guard ids.count <= 10_000 else { throw ProblemError(status: .badRequest, detail: "at most 10,000 messages per action") }
        guard let reason = reason?.trimmingCharacters(in: .whitespacesAndNewlines), !reason.isEmpty else {
            throw ProblemError(status: .badRequest, detail: "say why (reason): it goes on the audit record")
        }
        return jobs.start(replay: action == "replay", ids: ids, who: identity.name, reason: String(reason.prefix(500)))
    }
}

extension ParkedMessage {
    var summaryJSON: JSONText {
        .object([
            "id": .string(id), "reason": .string(reason), "reason_group": .string(reasonGroup), "stage": .string(stage),
            "endpoint": .optional(endpoint), "ticket": .optional(ticket), "parked_at": .string(parkedAt), "message_id": .optional(messageId),
            "seq": .int(Int(seq)), "body_bytes": .int(bodyBytes), "excerpt": .string(String(decoding: body, as: UTF8.self)),
        ])
    }

    var propertyList: [(String, String)] {
        guard let p = original?.properties else { return [] }
        var out: [(String, String)] = []
        func add(_ n: String, _ v: CustomStringConvertible?) { if let v { out.append((n, v.description)) } }
        add("content_type", p.contentType)
        add("content_encoding", p.contentEncoding)
        add("type", p.type)
        add("correlation_id", p.correlationId)
        add("reply_to", p.replyTo)
        add("expiration", p.expiration)
        add("user_id", p.userId)
        add("app_id", p.appId)
        add("timestamp", p.timestamp)
        add("priority", p.priority.map(Int.init))
        add("delivery_mode", p.persistent ? "2 (persistent)" : "1")
        for (k, v) in p.headers.sorted(by: { $0.key < $1.key }) { out.append(("header \(k)", v.description)) }
        return out
    }

    var bodyText: String { Pretty.body(String(decoding: body, as: UTF8.self)) ?? "" }

    var detailJSON: JSONText {
        .dict([
            ("id", .string(id)), ("reason", .string(reason)), ("reason_group", .string(reasonGroup)), ("stage", .string(stage)),
            ("endpoint", .optional(endpoint)), ("parked_at", .string(parkedAt)), ("message_id", .optional(messageId)),
            ("exchange", .optional(original?.exchange)), ("routing_key", .optional(original?.routingKey)),
            ("properties", .dict(propertyList.map { ($0.0, .string($0.1)) })),
            ("ticket", .optional(ticket)), ("seq", .int(Int(seq))), ("body_bytes", .int(bodyBytes)), ("body_truncated", .bool(body.count < bodyBytes)),
            ("body", .string(String(decoding: body, as: UTF8.self))),
        ])
    }
}
