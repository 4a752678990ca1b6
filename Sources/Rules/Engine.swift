import Foundation
import JSONPath

/// The pure rule engine: (event, conversation, configuration) -> decision. No I/O, no clock, no broker.
package struct Engine: Sendable {
    package let config: SwitchboardConfig
    /// The rules that can match a source endpoint (its own `from` rules and those for any endpoint),
    /// in evaluation order; timer rules under the timer's name. Computed once.
    private let bySource: [String: [Rule]]
    private let anySource: [Rule]
    private let byTimer: [String: [Rule]]
    /// Milliseconds of regular-expression matching allowed per message before it is parked (`RegexBudget`).
    package var regexLimit = RegexBudget.defaultLimit

    package init(config: SwitchboardConfig) {
        self.config = config
        var bySource: [String: [Rule]] = [:]
        for name in config.endpoints.keys {
            bySource[name] = config.rules.filter { $0.timer == nil && ($0.from.isEmpty || $0.from.contains(name)) }
        }
        self.bySource = bySource
        anySource = config.rules.filter { $0.timer == nil && $0.from.isEmpty }
        byTimer = Dictionary(grouping: config.rules.filter { $0.timer != nil }, by: { $0.timer! })
    }

    /// The id of the comment the event is about (`comment.id`, as a Jira comment webhook has it) when it is
    /// one Switchboard created on this endpoint (`Reserved.comments`, kept from the create's ack). A person
    /// editing or deleting that comment (`webhookEvent` comment_updated, comment_deleted) is no echo.
    static func ownComment(_ event: InboundEvent, conversation: ConversationSnapshot) -> String? {
        guard case .array(let ours)? = conversation.attributes[Reserved.comments(event.endpoint)],
            let id = event.body["comment"]?["id"]?.scalarText, ours.contains(.string(id))
        else { return nil }
        if let kind = event.body["webhookEvent"]?.scalarText, kind == "comment_updated" || kind == "comment_deleted" { return nil }
        return id
    }

    package func evaluate(_ event: InboundEvent, conversation: ConversationSnapshot) -> Decision {
        var decision = Decision()
        var context = Context(event: event, conversation: conversation, config: config, regexLimit: regexLimit)
        // A message that waits is not answered yet: its timeline says so (`Decide`), no rule or policy runs.
        if event.ack != nil, Self.isWaiting(event.body) { return decision }
        // Our own comment coming back through the tool's webhook (a comment event carries no stamp): known by its id.
        if event.ack == nil, event.type != EventType.timer, let id = Self.ownComment(event, conversation: conversation) {
            decision.notes.append(TimelineNote(
                kind: .echo, detail: "echo of our own write to \(event.endpoint) (comment \(id), which Switchboard created): no rule ran"))
            return decision
        }
        // Our own write coming back through the tool's webhook: said on the timeline, nothing else.
        if event.ack == nil, event.type != EventType.timer, let echo = config.endpoints[event.endpoint]?.echo,
            let n = echo.firstIndex(where: { context.test($0) })
        {
            decision.tooSlow = context.budget.exceeded
            decision.notes.append(TimelineNote(
                kind: .echo, detail: "echo of our own write to \(event.endpoint) (its echo condition \(n + 1) matched): no rule ran"))
            return decision
        }
        // A retry policy decides its own timers and the refusals it handles; an ok ack ends its run and
        // goes on to the rules.
        if applyRetryPolicies(event, context: &context, decision: &decision) {
            decision.tooSlow = context.budget.exceeded
            return decision
        }
        let candidates =
            event.type == EventType.timer ? byTimer[event.timer ?? ""] ?? [] : bySource[event.endpoint] ?? anySource
        for rule in candidates {
            // Timers match only rules that name them; acks only rules that ask for type ack.
            if let timer = rule.timer {
                guard event.type == EventType.timer, event.timer == timer else { continue }
            } else {
                if event.type == EventType.timer { continue }
                if event.type == EventType.ack && !rule.types.contains(EventType.ack) { continue }
                if !rule.from.isEmpty && !rule.from.contains(event.endpoint) { continue }
                if !rule.types.isEmpty && !rule.types.contains(event.type) { continue }
            }
            guard rule.conditions.allSatisfy({ context.test($0) }) else { continue }
            if rule.drop {
                decision.dropped = true
                decision.matched(rule.name, "dropped by rule '\(rule.name)'", kind: .dropped)
                break
            }
            decision.matched(rule.name, TimelineEntry.matchedDetail(rule: rule.name))
            for write in rule.sets where write.conditions.allSatisfy({ context.test($0) }) {
                var warnings: [String] = []
                let value = context.build(write.value, warnings: &warnings)
                let new = value == .null ? nil : value
                let old = context.attributes[write.name]
                guard old != new else { continue }
                context.attributes[write.name] = new
                decision.attributeChanges[write.name] = .some(new)
                decision.notes.append(TimelineNote(
                    kind: .attribute,
                    detail: "\(write.name): \(Self.excerpt(old)) -> \(Self.excerpt(new))", rule: rule.name))
            }
            for op in rule.counters {
                let old = context.counters[op.name] ?? 0
                switch op.change {
                case .increment(let n): setCounter(op.name, to: old + n, rule: rule.name, &context, &decision)
                case .set(let n): setCounter(op.name, to: n, rule: rule.name, &context, &decision)
                }
            }
            for send in rule.sends where send.conditions.allSatisfy({ context.test($0) }) {
                decision.outbound.append(context.draft(send, rule: rule.name, notes: &decision.notes))
            }
            for timer in rule.schedules {
                decision.timers.append(TimerDraft(rule: rule.name, name: timer.name, afterMs: timer.afterMs))
                decision.notes.append(TimelineNote(kind: .delayScheduled, detail: "timer '\(timer.name)' in \(Self.format(ms: timer.afterMs))", rule: rule.name))
            }
            if rule.stop { break }
        }
        decision.tooSlow = context.budget.exceeded
        if decision.matchedRules.isEmpty {
            if let ack = event.ack, !Self.ackStatus(event.body).ok {
                // Nothing silent: the refusal is on the timeline and the outbound message is marked failed.
                let said = Self.excerpt(event.body, limit: 1000)
                decision.failedOutbound[ack.messageId] = said
                decision.notes.append(TimelineNote(
                    kind: .ackUnhandled,
                    detail: "\(Self.ackStatus(event.body).status) ack of \(ack.type) \(ack.messageId) to \(ack.target) matched no rule; the message is marked failed. The ack: \(said)"))
            } else {
                let why = JSON.array(explain(event, conversation: conversation).map { ["rule": .string($0.rule), "reason": .string($0.reason)] })
                decision.notes.append(TimelineNote(
                    kind: .noRule, detail: "no rule matched \(event.type) from \(event.endpoint)", body: why.serializedString))
            }
        }
        return decision
    }

    /// Sets a counter and notes the change on the timeline; false when it already had that value.
    @discardableResult
    func setCounter(_ name: String, to value: Int, rule: String, _ context: inout Context, _ decision: inout Decision) -> Bool {
        let old = context.counters[name] ?? 0
        guard old != value else { return false }
        context.counters[name] = value
        decision.counterChanges[name] = value
        decision.notes.append(TimelineNote(kind: .counter, detail: "\(name): \(old) -> \(value)", rule: rule))
        return true
    }

    /// What an ack says: `status` ("ok" when absent; anything else is a refusal).
    package static func ackStatus(_ body: JSON) -> (ok: Bool, status: String) {
        let status = body["status"]?.scalarText ?? "ok"
        return (status.lowercased() == "ok", status)
    }

    /// An ack that says the message waits (a rate limit, an open circuit) and will be sent again by whoever
    /// waits with it: status `waiting`. Neither an answer nor a refusal.
    package static func isWaiting(_ body: JSON) -> Bool {
        body["status"]?.scalarText?.lowercased() == "waiting"
    }

    /// An attribute value on the timeline: whole when short, else its first 100 characters. The
    /// conversation shows the whole current value; the timeline says when and by which rule it changed.
    static func excerpt(_ value: JSON?, limit: Int = 100) -> String {
        guard let value else { return "(none)" }
        // Only as much of a large value is serialized as the excerpt needs (4 bytes per character at most).
        let (text, truncated) = value.serializedString(maxBytes: limit * 4 + 4)
        return !truncated && text.utf8.count <= limit ? text : String(text.prefix(limit)) + "..."
    }

    package static func format(ms: Int) -> String {
        if ms % 3_600_000 == 0 { return "\(ms / 3_600_000)h" }
        if ms % 60_000 == 0 { return "\(ms / 60_000)m" }
        if ms % 1000 == 0 { return "\(ms / 1000)s" }
        return "\(ms)ms"
    }
}

/// Evaluation of conditions and mappings against one event and its conversation.
struct Context {
    let event: InboundEvent
    let conversation: ConversationSnapshot
    let config: SwitchboardConfig
    /// The conversation's memory as the rules so far left it.
    var attributes: [String: JSON]
    var counters: [String: Int]
    /// Bounds the regular expressions of this one evaluation (conditions and JSONPath match/search).
    let budget: RegexBudget

    init(event: InboundEvent, conversation: ConversationSnapshot, config: SwitchboardConfig, regexLimit: Int = RegexBudget.defaultLimit) {
        self.budget = RegexBudget(limit: regexLimit)
        self.event = event
        self.conversation = conversation
        self.config = config
        self.attributes = conversation.attributes
        self.counters = conversation.counters
    }

    func reference(_ endpoint: String) -> String? {
        if endpoint == event.endpoint, let id = event.ticketId { return id }
        return conversation.references[endpoint] ?? event.references[endpoint]
    }

    func meta(_ key: String) -> JSON? {
        switch key {
        case "endpoint": return .string(event.endpoint)
        case "message_id": return .string(event.messageId)
        case "type": return .string(event.type)
        case "who": return event.who.map { .string($0) }
        case "ticket_id": return event.ticketId.map { .string($0) }
        case "conversation": return .string(conversation.id)
        case "timer": return event.timer.map { .string($0) }
        case "acked_type": return event.ack.map { .string($0.type) }
        case "acked_rule": return event.ack.map { .string($0.rule) }
        case "acked_target": return event.ack.map { .string($0.target) }
        case "acked_message_id": return event.ack.map { .string($0.messageId) }
        default: return nil
        }
    }

    // MARK: Conditions

    func test(_ condition: Condition) -> Bool {
        switch condition {
        case .all(let cs): return cs.allSatisfy { test($0) }
        case .any(let cs): return cs.contains { test($0) }
        case .not(let c): return !test(c)
        case .test(let subject, let op): return apply(op, to: values(of: subject))
        }
    }

    func values(of subject: Subject) -> [JSON] {
        switch subject {
        case .field(let path): return path.select(event.body, budget: budget)
        case .reference(let endpoint): return reference(endpoint).map { [.string($0)] } ?? []
        case .attribute(let name): return attributes[name].map { [$0] } ?? []
        case .counter(let name): return [.number(JSONNumber(Double(counters[name] ?? 0)))]
        case .meta(let key): return meta(key).map { [$0] } ?? []
        }
    }

    private func apply(_ op: Operator, to values: [JSON]) -> Bool {
        switch op {
        case .exists(let wanted):
            return values.contains { $0 != .null } == wanted
        case .equals(let expected, let ignoreCase):
            return values.contains { Self.looselyEqual($0, expected, ignoreCase: ignoreCase) }
        case .oneOf(let options, let ignoreCase):
            return values.contains { v in options.contains { Self.looselyEqual(v, $0, ignoreCase: ignoreCase) } }
        case .regex(let box):
            return values.contains { v in
                guard let text = v.scalarText, v != .null else { return false }
                return budget.firstMatch(box.regex, in: text)
            }
        case .compare(let comparison, let bound):
            return values.contains { v in
                guard let n = Self.number(v) else { return false }
                switch comparison {
                case .lt: return n < bound
                case .lte: return n <= bound
                case .gt: return n > bound
                case .gte: return n >= bound
                }
            }
        }
    }

    /// Scalars compare by their text, so the YAML number 1 equals the JSON string "1" (ITSM tools send
    /// numbers as text all the time); numbers compare by value; arrays and objects compare exactly.
    static func looselyEqual(_ a: JSON, _ b: JSON, ignoreCase: Bool) -> Bool {
        if case .number(let x) = a, case .number(let y) = b { return x == y }
        if a == .null || b == .null { return a == b }
        guard let s = a.scalarText, let t = b.scalarText else { return a == b }
        // lowercased() is Swift-native; caseInsensitiveCompare goes through NSString and costs ~10x.
        return ignoreCase ? s.lowercased() == t.lowercased() : s == t
    }

    static func number(_ v: JSON) -> Double? {
        switch v {
        case .number(let n): return n.value
        case .string(let s): return Double(s.trimmingCharacters(in: .whitespaces))
        default: return nil
        }
    }

    // MARK: Mappings

    /// A send's message, built; what the mapping left out is a warning on the timeline.
    func draft(_ send: Send, rule: String, notes: inout [TimelineNote]) -> OutboundDraft {
        var warnings: [String] = []
        let body = build(send.body, warnings: &warnings) ?? .object([:])
        for w in warnings {
            notes.append(TimelineNote(kind: .warning, detail: "rule '\(rule)' to \(send.to): \(w)", rule: rule))
        }
        return OutboundDraft(rule: rule, target: send.to, type: send.type, body: body, delayMs: send.delayMs)
    }

    /// The value a mapping produces, or nil when it produces nothing (the key is then left out).
    func build(_ mapping: Mapping, warnings: inout [String]) -> JSON? {
        switch mapping {
        case .constant(let v):
            return v
        case .field(let path, let t):
            return transform(path.first(event.body, budget: budget).flatMap { $0 == .null ? nil : $0 }, t, warnings: &warnings, what: path.source)
        case .template(let template, let t):
            return transform(.string(render(template)), t, warnings: &warnings, what: template.source)
        case .reference(let endpoint, let t):
            return transform(reference(endpoint).map { .string($0) }, t, warnings: &warnings, what: "reference \(endpoint)")
        case .attribute(let name, let t):
            return transform(attributes[name], t, warnings: &warnings, what: "attribute \(name)")
        case .counter(let name):
            return .number(JSONNumber(Double(counters[name] ?? 0)))
        case .object(let members):
            var out: [String: JSON] = [:]
            for (k, m) in members {
                if let v = build(m, warnings: &warnings) { out[k] = v }
            }
            return .object(out)
        case .array(let items):
            return .array(items.compactMap { build($0, warnings: &warnings) })
        }
    }

    private func transform(_ value: JSON?, _ t: Transform, warnings: inout [String], what: String) -> JSON? {
        guard let value else { return t.defaultValue }
        guard let name = t.translate, let table = config.translations[name] else { return value }
        if let translated = table.translate(value) { return translated }
        if let d = t.defaultValue { return d }
        warnings.append("translation '\(name)' has no entry for \(value.serializedString) (from \(what)) and no default; left out")
        return nil
    }

    func render(_ template: Template) -> String {
        var out = ""
        for part in template.parts {
            switch part {
            case .literal(let s): out += s
            case .field(let path):
                if let v = path.first(event.body, budget: budget) { out += v.scalarText ?? v.serializedString }
            case .reference(let endpoint): out += reference(endpoint) ?? ""
            case .attribute(let name):
                if let v = attributes[name] { out += v.scalarText ?? v.serializedString }
            case .counter(let name): out += String(counters[name] ?? 0)
            case .meta(let key): out += meta(key)?.scalarText ?? ""
            }
        }
        return out
    }
}

extension EndpointConfig {
    /// Why a message of this endpoint is parked when `ticket_id` finds nothing in it.
    package var noTicketIdReason: String { "no ticket id at \(ticketId.source) (endpoints.\(name).ticket_id)" }

    /// A ticket message of this endpoint as the engine sees it; nil when it has no ticket id (`noTicketIdReason`).
    package func event(messageId: String, amqpType: String?, body: JSON) -> InboundEvent? {
        let facts = facts(body: body, amqpType: amqpType)
        guard let ticket = facts.ticketId else { return nil }
        return InboundEvent(
            endpoint: name, messageId: messageId, type: facts.type, body: body, ticketId: ticket, who: facts.who, references: facts.references)
    }

    /// What a message of this endpoint says about itself: its ticket id, who, its type, other references.
    package func facts(body: JSON, amqpType: String?) -> (ticketId: String?, who: String?, type: String, references: [String: String]) {
        let ticket = ticketId.first(body).flatMap { $0 == .null ? nil : $0.scalarText }.flatMap { $0.isEmpty ? nil : $0 }
        let who = self.who?.first(body)?.scalarText
        let type = amqpType.flatMap { $0.isEmpty ? nil : $0 } ?? typeField?.first(body)?.scalarText ?? "update"
        var refs: [String: String] = [:]
        for (endpoint, path) in references {
            if let v = path.first(body)?.scalarText, !v.isEmpty, path.first(body) != .null { refs[endpoint] = v }
        }
        return (ticket, who, type, refs)
    }
}
