import Foundation
import JSONPath

/// The `retries:` section: retry policies (`RetryPolicy`), one list entry each.
extension ConfigLoader {
    mutating func parseRetry(
        _ y: Y, endpoints: [String: EndpointConfig], translations: [String: TranslationTable], ruleNames: [String: SourceLocation]
    ) -> RetryPolicy? {
        guard let m = mapping(y, "a retry policy") else { return nil }
        var policy = RetryPolicy(name: "", endpoint: "", wait: .fixed(60_000), location: y.location)
        var context = MappingContext(endpoints: endpoints, translations: translations)
        var sawWait = false
        for (key, value) in m {
            switch key.string {
            case "name": policy.name = string(value) ?? ""
            case "description": policy.description = string(value)?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            case "endpoint":
                if let e = string(value) {
                    if endpoints[e] == nil {
                        error(value, "unknown endpoint '\(e)' in 'endpoint' (known: \(endpoints.keys.sorted().joined(separator: ", ")))")
                    }
                    policy.endpoint = e
                }
            case "when": policy.conditions = conditions(value, context: &context)
            case "types": policy.types = Set(stringList(value).map(\.value))
            case "rules":
                for v in stringList(value) {
                    if ruleNames[v.value] == nil { error(v.node, "unknown rule '\(v.value)' in 'rules'") }
                    policy.rules.insert(v.value)
                }
            case "wait":
                sawWait = true
                if let w = parseWait(value) { policy.wait = w }
            case "attempts": policy.attempts = int(value, key: "attempts", min: 0, max: 1000)
            case "within": policy.withinMs = duration(value)
            case "resend":
                switch string(value) {
                case "same": policy.resend = .same
                case "rebuild": policy.resend = .rebuild
                default: error(value, "resend is 'same' (the refused body as it was sent) or 'rebuild' (the rule's send, built again from the conversation)")
                }
            case "give_up":
                for s in sequence(value, "give_up") ?? [] {
                    if let send = parseSend(s, context: &context) { policy.giveUp.append(send) }
                }
            default:
                unknownKey(key, in: "retry policy", allowed: "name, description, endpoint, when, types, rules, wait, attempts, within, resend, give_up")
            }
        }
        if policy.name.isEmpty {
            error(y, "a retry policy needs a 'name'")
        } else if !Self.isValidName(policy.name) {
            error(y, "retry policy name '\(policy.name)' may only hold letters, digits, '-', '_' and '.'")
        }
        if policy.endpoint.isEmpty { error(y, "retry policy '\(policy.name)' needs 'endpoint': whose error acks it handles") }
        if !sawWait { error(y, "retry policy '\(policy.name)' needs 'wait' (60s, {exponential: 10s, max: 10m}, or {from: $.retry_after, max: 1h})") }
        if policy.attempts == nil && policy.withinMs == nil {
            error(y, "retry policy '\(policy.name)' needs 'attempts' (how many sends again), 'within' (for how long), or both")
        }
        return policy
    }

    /// `60s`; `{exponential: 10s, factor: 2, max: 10m, jitter: 0.2}`; `{from: $.retry_after, default: 60s, max: 1h}`.
    mutating func parseWait(_ y: Y) -> RetryPolicy.Wait? {
        if case .scalar = y.node { return duration(y).map { .fixed($0) } }
        guard let m = mapping(y, "wait") else { return nil }
        var exponential: Int?, factor = 2.0, maxMs: Int?, jitter = 0.0
        var from: JSONPath?, defaultMs: Int?
        for (k, v) in m {
            switch k.string {
            case "exponential": exponential = duration(v)
            case "factor":
                if let f = double(v) {
                    if f < 1 || f > 10 { error(v, "wait.factor is between 1 and 10; got \(f)") } else { factor = f }
                }
            case "max": maxMs = duration(v)
            case "jitter":
                if let j = double(v) {
                    if j < 0 || j >= 1 { error(v, "wait.jitter is a fraction of the wait, at least 0 and below 1 (0.2: up to 20% shorter); got \(j)") } else { jitter = j }
                }
            case "from": from = path(v)
            case "default": defaultMs = duration(v)
            default: unknownKey(k, in: "wait", allowed: "exponential, factor, max, jitter (exponential); from, default, max (a time the ack names)")
            }
        }
        switch (exponential, from) {
        case (let initial?, nil):
            guard let maxMs else {
                error(y, "an exponential wait needs 'max': the longest wait (each wait is a delay queue)")
                return nil
            }
            if maxMs < initial { error(y, "wait.max (\(maxMs) ms) is shorter than the first wait (\(initial) ms)") }
            return .exponential(initialMs: initial, factor: factor, maxMs: maxMs, jitter: jitter)
        case (nil, let path?):
            guard let maxMs, let defaultMs else {
                error(y, "a wait the ack names needs 'default' (when it names none) and 'max' (the longest wait honoured)")
                return nil
            }
            return .fromAck(path, defaultMs: min(defaultMs, maxMs), maxMs: maxMs)
        default:
            error(y, "wait is a duration (60s), {exponential: 10s, max: 10m}, or {from: $.retry_after, default: 60s, max: 1h}")
            return nil
        }
    }
}
