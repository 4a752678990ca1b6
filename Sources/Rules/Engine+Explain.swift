import Foundation
import JSONPath

/// Why a rule did not match a message: the first thing that kept it out, with the value it saw.
package struct RuleMiss: Sendable, Equatable {
    package var rule: String
    package var reason: String
}

extension Engine {
    /// For a message no rule matched: rule by rule, in evaluation order, which test was false and with
    /// which value. Evaluated against the same conversation the decision saw, so it says what happened.
    package func explain(_ event: InboundEvent, conversation: ConversationSnapshot) -> [RuleMiss] {
        let context = Context(event: event, conversation: conversation, config: config, regexLimit: regexLimit)
        return config.rules.map { rule in
            RuleMiss(rule: rule.name, reason: Self.miss(rule, event: event, context: context))
        }
    }

    private static func miss(_ rule: Rule, event: InboundEvent, context: Context) -> String {
        if let timer = rule.timer {
            return event.type == EventType.timer ? "listens to timer '\(timer)', this is timer '\(event.timer ?? "?")'" : "listens to timer '\(timer)' only"
        }
        if event.type == EventType.timer { return "not a timer rule; this is timer '\(event.timer ?? "?")'" }
        if !rule.from.isEmpty && !rule.from.contains(event.endpoint) {
            return "from \(rule.from.sorted().joined(separator: ", ")); this message is from \(event.endpoint)"
        }
        if event.type == EventType.ack && !rule.types.contains(EventType.ack) { return "acks match only rules with type: ack" }
        if !rule.types.isEmpty && !rule.types.contains(event.type) {
            return "type \(rule.types.sorted().joined(separator: ", ")); this message is \(event.type)"
        }
        for (n, condition) in rule.conditions.enumerated() where !context.test(condition) {
            return "condition \(n + 1) is false: \(describe(condition, context: context))"
        }
        return "matched (another rule stopped evaluation or a regular expression gave up)"
    }

    private static func describe(_ condition: Condition, context: Context) -> String {
        switch condition {
        case .all(let cs): return "all of (" + cs.map { describe($0, context: context) }.joined(separator: "; ") + ")"
        case .any(let cs): return "any of (" + cs.map { describe($0, context: context) }.joined(separator: "; ") + ")"
        case .not(let c): return "not (" + describe(c, context: context) + ")"
        case .test(let subject, let op):
            let values = context.values(of: subject)
            let seen: String
            switch values.count {
            case 0: seen = "no value"
            case 1: seen = "the value is " + shown(values[0], limit: 120)
            default: seen = "the values are " + values.prefix(5).map { shown($0, limit: 60) }.joined(separator: ", ")
            }
            return "\(name(subject)) \(name(op)); \(seen)"
        }
    }

    private static func name(_ s: Subject) -> String {
        switch s {
        case .field(let p): return "field \(p.source)"
        case .reference(let e): return "reference \(e)"
        case .attribute(let a): return "attribute \(a)"
        case .counter(let c): return "counter \(c)"
        case .meta(let m): return "meta \(m)"
        }
    }

    private static func name(_ op: Operator) -> String {
        switch op {
        case .equals(let v, let ic): return "equals \(v.serializedString)" + (ic ? " (ignoring case)" : "")
        case .oneOf(let vs, let ic): return "one of [\(vs.map(\.serializedString).joined(separator: ", "))]" + (ic ? " (ignoring case)" : "")
        case .regex(let box): return "matches /\(box.pattern)/"
        case .exists(let wanted): return wanted ? "exists" : "does not exist"
        case .compare(let c, let bound):
            let sign = ["lt": "<", "lte": "<=", "gt": ">", "gte": ">="][c.rawValue] ?? c.rawValue
            return "\(sign) \(JSON.number(JSONNumber(bound)).serializedString)"
        }
    }

    private static func shown(_ v: JSON, limit: Int) -> String {
        let text = v.serializedString
        return text.count <= limit ? text : String(text.prefix(limit)) + "..."
    }
}
