import Foundation
import JSONPath

/// `switchboard rules try`: what one message would do to a conversation, changing nothing. The same
/// decision a worker makes (`decide`), told rule by rule.
extension Engine {
    /// The endpoint a message comes from when none is named: the one endpoint whose `ticket_id` finds a
    /// value in it; nil when none or several do.
    package func guessEndpoint(of body: JSON) -> String? {
        let found = config.endpoints.filter { $0.value.facts(body: body, amqpType: nil).ticketId != nil }.map(\.key)
        return found.count == 1 ? found[0] : nil
    }

    /// The decision trace as lines of text: the conversation it meets, each rule (matched, or why not), and
    /// what the message would send, schedule and change.
    package func trace(endpoint: String, type: String?, body: JSON, conversation: ConversationSnapshot, now: Date) -> [String] {
        guard let endpointConfig = config.endpoints[endpoint] else {
            return ["unknown endpoint '\(endpoint)' (the configuration has \(config.endpoints.keys.sorted().joined(separator: ", ")))"]
        }
        guard let event = endpointConfig.event(messageId: "rules-try", amqpType: type, body: body), let ticket = event.ticketId else {
            return ["would be parked: \(endpointConfig.noTicketIdReason)"]
        }
        var lines = ["message: \(event.type) of \(endpoint)/\(ticket)" + (event.who.map { " by \($0)" } ?? "")]
        let c = conversation
        lines.append(
            c.version == 0
                ? "conversation: new"
                : "conversation \(c.id) (version \(c.version)): "
                    + (c.references.sorted { $0.key < $1.key }.map { "\($0.key)/\($0.value)" }.joined(separator: ", ")))
        for (name, value) in c.shownAttributes.sorted(by: { $0.key < $1.key }) { lines.append("  attribute \(name) = \(Self.excerpt(value, limit: 200))") }
        for (name, value) in c.shownCounters.sorted(by: { $0.key < $1.key }) {
            lines.append("  counter \(name) = \(value)")
        }
        let decision: MessageDecision
        do {
            decision = try decide(Situation(endpoint: endpoint, messageId: "rules-try", route: 0, event: event, conversation: c, now: now))
        } catch {
            return lines + ["would be parked: \(error.description)"]
        }
        for ref in decision.newReferences where ref.endpoint != endpoint || c.version > 0 { lines.append("would link \(ref)") }
        // What the rules saw: the conversation with this message's references linked.
        var seen = c
        for ref in decision.newReferences { seen.references[ref.endpoint] = ref.ticketId }
        let misses = Dictionary(explain(event, conversation: seen).map { ($0.rule, $0.reason) }, uniquingKeysWith: { a, _ in a })
        let dropped = decision.timeline.contains { $0.kind == .dropped }
        lines.append("rules, in the order they are evaluated:")
        for rule in config.rules where rule.timer == nil {
            if decision.matchedRules.contains(rule.name) {
                lines.append("  matched  \(rule.name)" + (rule.drop ? " (drop)" : rule.stop ? " (stop)" : ""))
            } else {
                let why = misses[rule.name] ?? "?"
                lines.append("  no       \(rule.name): "
                    + (why.hasPrefix("matched") ? "its conditions hold, but an earlier rule ended evaluation (stop or drop)" : why))
            }
        }
        if dropped { lines.append("dropped: nothing is sent") }
        let sends = decision.outbox.filter { $0.kind == .message }
        lines.append(sends.isEmpty ? "would send: nothing" : "would send:")
        for o in sends {
            let delay = o.delayMs > 0 ? ", after \(Self.format(ms: o.delayMs))" : ""
            lines.append("  \(o.type) to \(o.target) (rule '\(o.rule)'\(delay)): \(String(decoding: o.body, as: UTF8.self))")
        }
        for t in decision.outbox where t.kind == .timer {
            lines.append("would schedule timer '\(t.type)' in \(Self.format(ms: t.delayMs)) (rule '\(t.rule)')")
        }
        for (name, value) in decision.attributes.sorted(by: { $0.key < $1.key }) where !Reserved.isReserved(name) {
            lines.append("would set attribute \(name): \(Self.excerpt(c.attributes[name], limit: 200)) -> \(Self.excerpt(value, limit: 200))")
        }
        for (name, value) in decision.counters.sorted(by: { $0.key < $1.key }) where !Reserved.isReserved(name) {
            lines.append("would set counter \(name): \(c.counters[name] ?? 0) -> \(value)")
        }
        lines.append("(nothing was sent or stored)")
        return lines
    }
}
