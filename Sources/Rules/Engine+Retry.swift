import Foundation
import JSONPath

/// Retry policies (`RetryPolicy`) at work in the engine: a refusal they handle schedules a send again or
/// gives up; their timer sends the refused message again; an ok ack ends a run of refusals.
extension Engine {
    /// True when a retry policy decided the event (a refusal it handles, or its timer): no rule sees it.
    func applyRetryPolicies(_ event: InboundEvent, context: inout Context, decision: inout Decision) -> Bool {
        if event.type == EventType.timer, let timer = event.timer, timer.hasPrefix(RetryPolicy.timerPrefix) {
            resend(event, timer: timer, context: &context, decision: &decision)
            return true
        }
        guard let ack = event.ack else { return false }
        // Only the endpoint a message went to may answer it (`decide`), so the target is the ack's endpoint.
        let policies = config.retries.filter { $0.covers(target: ack.target, type: ack.type, rule: ack.rule) }
        guard !policies.isEmpty else { return false }
        if Self.ackStatus(event.body).ok {
            // Taken: the run of refusals of this type is over (the rules still see the ack).
            for p in policies {
                let running = [p.counter(ack.type), p.sinceCounter(ack.type)].filter { (context.counters[$0] ?? 0) != 0 }
                guard !running.isEmpty else { continue }
                decision.matched(p.resetName, "retry policy '\(p.name)': \(ack.type) taken; its retries end")
                for name in running { setCounter(name, to: 0, rule: p.resetName, &context, &decision) }
            }
            return false
        }
        guard let p = policies.first(where: { $0.conditions.allSatisfy { context.test($0) } }) else { return false }
        let counter = p.counter(ack.type)
        let done = context.counters[counter] ?? 0
        let attempt = done + 1
        let wait = p.waitMs(attempt: attempt, ack: event.body, seed: context.conversation.id, now: event.now, budget: context.budget)
        let nowSeconds = event.now.map { Int($0.timeIntervalSince1970) } ?? 0
        let since = done > 0 ? context.counters[p.sinceCounter(ack.type)] ?? nowSeconds : nowSeconds
        let withinBudget = p.withinMs.map { (nowSeconds - since) * 1000 + wait <= $0 } ?? true
        let limit = p.attempts.map { " of \($0)" } ?? ""
        if p.attempts.map({ done < $0 }) ?? true, withinBudget {
            decision.matched(p.retryName, "retry policy '\(p.name)' matched")
            setCounter(counter, to: attempt, rule: p.retryName, &context, &decision)
            if p.withinMs != nil, done == 0 { setCounter(p.sinceCounter(ack.type), to: nowSeconds, rule: p.retryName, &context, &decision) }
            var payload: [String: JSON] = ["type": .string(ack.type), "rule": .string(ack.rule), "refused": .string(ack.messageId)]
            if p.resend == .same, !ack.body.isEmpty, let body = try? JSON.parse(ack.body) { payload["body"] = body }
            decision.timers.append(TimerDraft(rule: p.retryName, name: p.timerName, afterMs: wait, payload: payload))
            decision.notes.append(TimelineNote(kind: .delayScheduled, detail: "timer '\(p.timerName)' in \(Self.format(ms: wait))", rule: p.retryName))
            decision.notes.append(TimelineNote(
                kind: .retry, detail: "\(ack.type) \(ack.messageId) refused; sent again in \(Self.format(ms: wait)) (attempt \(attempt)\(limit))",
                rule: p.retryName))
            return true
        }
        decision.matched(p.giveUpName, "retry policy '\(p.name)' gives up")
        let why = done >= (p.attempts ?? .max) ? "after \(done) send(s) again" : "its time (\(Self.format(ms: p.withinMs ?? 0))) would run out"
        decision.notes.append(TimelineNote(kind: .retry, detail: "\(ack.type) \(ack.messageId) refused; not sent again: \(why)", rule: p.giveUpName))
        // The give-up messages see the count of sends again (`${counter:retry:<policy>:<type>}`) before it is reset.
        for send in p.giveUp where send.conditions.allSatisfy({ context.test($0) }) {
            decision.outbound.append(context.draft(send, rule: p.giveUpName, notes: &decision.notes))
        }
        setCounter(counter, to: 0, rule: p.giveUpName, &context, &decision)
        setCounter(p.sinceCounter(ack.type), to: 0, rule: p.giveUpName, &context, &decision)
        return true
    }

    /// A retry policy's timer fired: the refused message goes out again, unless the run ended meanwhile.
    private func resend(_ event: InboundEvent, timer: String, context: inout Context, decision: inout Decision) {
        let payload = event.body
        guard let p = config.retries.first(where: { $0.timerName == timer }),
            let type = payload["type"]?.stringValue, let rule = payload["rule"]?.stringValue
        else {
            decision.notes.append(TimelineNote(kind: .warning, detail: "timer '\(timer)' fired, but no retry policy of this configuration sets it; nothing sent again"))
            return
        }
        let refused = payload["refused"]?.stringValue ?? "?"
        let attempt = context.counters[p.counter(type)] ?? 0
        guard attempt > 0 else {
            decision.notes.append(TimelineNote(
                kind: .retry, detail: "\(type) \(refused) not sent again: an ok ack or giving up ended its retries since", rule: p.resendName))
            return
        }
        var draft: OutboundDraft?
        if p.resend == .rebuild, let send = config.rules.first(where: { $0.name == rule })?.sends.first(where: { $0.to == p.endpoint && $0.type == type }) {
            draft = context.draft(send, rule: rule, notes: &decision.notes)
            draft?.delayMs = nil
        } else if let body = payload["body"] {
            draft = OutboundDraft(rule: rule, target: p.endpoint, type: type, body: body)
        }
        guard let draft else {
            decision.notes.append(TimelineNote(
                kind: .warning,
                detail: "retry policy '\(p.name)': rule '\(rule)' no longer sends \(type) to \(p.endpoint), so \(refused) cannot be rebuilt; not sent again",
                rule: p.resendName))
            return
        }
        decision.matched(p.resendName, "retry policy '\(p.name)' sends \(type) again")
        decision.notes.append(TimelineNote(
            kind: .retry, detail: "\(type) \(refused) sent again (attempt \(attempt)\(p.attempts.map { " of \($0)" } ?? ""))", rule: p.resendName))
        decision.outbound.append(draft)
    }
}

extension RetryPolicy {
    /// Timers of this name are retry policies' own (no rule may schedule or handle one).
    package static let timerPrefix = "retry:"
}
