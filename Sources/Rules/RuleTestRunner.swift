import Foundation
import JSONPath

/// Runs rule tests (`RuleTestCase`) through the real engine (`Engine.decide`, what a worker runs), with
/// no broker, no store and no clock of its own: the conversation lives in memory between steps, messages
/// sent are kept so an `ack` step can answer them, and timers wait for an `advance` step to come due.
package struct RuleTestRunner {
    package let config: SwitchboardConfig
    private let engine: Engine
    /// Where every case's clock starts: 2026-01-01T00:00:00Z.
    package static let epoch = Date(timeIntervalSince1970: 1_767_225_600)

    package init(config: SwitchboardConfig) {
        self.config = config
        engine = Engine(config: config)
    }

    package func run(_ cases: [RuleTestCase]) -> [RuleTestResult] {
        cases.map { run($0) }
    }

    /// `before`: the first `steps` steps are played by another configuration's engine and not checked (a
    /// replay's history before its window, decided as the running configuration decided it).
    package func run(_ test: RuleTestCase, before: (engine: Engine, steps: Int)? = nil) -> RuleTestResult {
        let started = Date()
        var state = State(conversation: test.start, now: Self.epoch, answers: test.answers, engine: before?.engine ?? engine)
        for (n, timer) in test.pendingTimers.enumerated() {
            let body: JSON = ["timer": .string(timer.name), "conversation": .string(test.start.id)]
            state.timers.append((Self.epoch.addingTimeInterval(Double(timer.afterMs) / 1000), StoredOutbound(
                messageId: "test-pending-timer-\(n + 1)", conversationId: test.start.id, inbound: InboundKey("test", "state"),
                target: MessageIds.timerEndpoint, type: timer.name, rule: "(state)", body: body.serialized(), delayMs: timer.afterMs, kind: .timer)))
        }
        var failures: [String] = []
        var rules: Set<String> = []
        for (n, step) in test.steps.enumerated() {
            if let before, n < before.steps {
                _ = play(step, number: n + 1, state: &state)
                continue
            }
            state.engine = engine
            let outcome = play(step, number: n + 1, state: &state)
            let problems = check(step.expect, outcome, state, rules: &rules)
            failures += problems.map { "\(step.location): test '\(test.name)', step \(n + 1) (\(step.title)): \($0)" }
        }
        return RuleTestResult(name: test.name, location: test.location, failures: failures, rules: rules, seconds: Date().timeIntervalSince(started))
    }

    // MARK: - Playing a step

    private struct State {
        var conversation: ConversationSnapshot
        var now: Date
        /// Every message sent so far, oldest first (what an `ack` step answers).
        var sent: [StoredOutbound] = []
        /// Timers scheduled and not fired yet, with the time they come due.
        var timers: [(due: Date, timer: StoredOutbound)] = []
        /// The scripted answers not used yet, by endpoint.
        var answers: [String: [JSON]]
        /// How many messages have been decided (scripted answers get ids of their own).
        var decided = 0
        /// The engine deciding the steps now.
        var engine: Engine
    }

    private struct Outcome {
        var decisions: [MessageDecision] = []
        /// What each decision was made on (why a rule did not match is explained against it).
        var situations: [Situation] = []
        var sent: [StoredOutbound] = []
        var timers: [StoredOutbound] = []
        /// Why the message cannot be decided (it would be parked), or why the step could not be played.
        var parked: String?
        var unplayable: String?
    }

    private func play(_ step: RuleTestStep, number: Int, state: inout State) -> Outcome {
        var outcome = Outcome()
        let messageId = "test-message-\(number)"
        var situations: [Situation] = []
        switch step.action {
        case .message(let endpoint, let type, let body):
            guard let endpointConfig = config.endpoints[endpoint] else {
                outcome.unplayable = "unknown endpoint '\(endpoint)' (the configuration has \(config.endpoints.keys.sorted().joined(separator: ", ")))"
                return outcome
            }
            guard let event = endpointConfig.event(messageId: messageId, amqpType: type, body: body) else {
                outcome.parked = endpointConfig.noTicketIdReason
                return outcome
            }
            situations.append(Situation(endpoint: endpoint, messageId: messageId, route: 0, event: event, conversation: state.conversation, now: state.now))
        case .ack(let endpoint, let answering, let body, let nth):
            let candidates = state.sent.filter { $0.target == endpoint && (answering == nil || $0.type == answering) }
            guard let acked = nth.map({ $0 <= candidates.count ? candidates[$0 - 1] : nil }) ?? candidates.last else {
                outcome.unplayable = (nth.map { "an answer with no send: no \(RuleTestStep.ordinal($0)) message" } ?? "nothing was sent")
                    + " to '\(endpoint)'" + (answering.map { " of type '\($0)'" } ?? "") + " for it to answer"
                    + (nth.map { _ in " (\(candidates.count) were sent)" } ?? "")
                return outcome
            }
            situations.append(ack(body, answering: acked, messageId: messageId, state))
        case .advance(let ms):
            let end = state.now.addingTimeInterval(Double(ms) / 1000)
            // Timers fire one at a time, in the order they come due; one may schedule another that also
            // comes due before the end.
            while let next = state.timers.enumerated().filter({ $0.element.due <= end }).min(by: { $0.element.due < $1.element.due }) {
                state.timers.remove(at: next.offset)
                state.now = next.element.due
                let timer = next.element.timer
                let body = (try? JSON.parse(timer.body)) ?? .object([:])
                var event = InboundEvent(endpoint: MessageIds.timerEndpoint, messageId: timer.messageId, type: EventType.timer, body: body, ticketId: nil)
                event.timer = timer.type
                if !decideAndApply(
                    Situation(endpoint: MessageIds.timerEndpoint, messageId: timer.messageId, route: 0, event: event, conversation: state.conversation, now: state.now),
                    &state, &outcome)
                {
                    return outcome
                }
            }
            state.now = end
            return outcome
        }
        for s in situations where !decideAndApply(s, &state, &outcome) { break }
        return outcome
    }

    /// Decides one message and applies its decision to the conversation; false when it cannot be decided.
    private func decideAndApply(_ s: Situation, _ state: inout State, _ outcome: inout Outcome) -> Bool {
        let d: MessageDecision
        do {
            d = try state.engine.decide(s)
        } catch {
            outcome.parked = error.description
            return false
        }
        outcome.decisions.append(d)
        outcome.situations.append(s)
        state.conversation = d.next
        state.decided += 1
        var answered: [StoredOutbound] = []
        for o in d.outbox {
            if o.kind == .timer {
                state.timers.append((state.now.addingTimeInterval(Double(o.delayMs) / 1000), o))
                outcome.timers.append(o)
            } else {
                state.sent.append(o)
                outcome.sent.append(o)
                if state.answers[o.target]?.isEmpty == false { answered.append(o) }
            }
        }
        // The scripted answers, in the order their messages were sent, each decided like an ack step.
        for o in answered {
            guard var queue = state.answers[o.target], !queue.isEmpty else { continue }
            let body = queue.removeFirst()
            state.answers[o.target] = queue
            if !decideAndApply(ack(body, answering: o, messageId: "test-answer-\(state.decided + 1)", state), &state, &outcome) { return false }
        }
        return true
    }

    /// An ack from the endpoint `acked` went to, answering it.
    private func ack(_ body: JSON, answering acked: StoredOutbound, messageId: String, _ state: State) -> Situation {
        let who = config.endpoints[acked.target]?.facts(body: body, amqpType: EventType.ack).who
        let event = InboundEvent(endpoint: acked.target, messageId: messageId, type: EventType.ack, body: body, ticketId: nil, who: who)
        return Situation(endpoint: acked.target, messageId: messageId, route: 0, event: event, conversation: state.conversation, acked: acked, now: state.now)
    }

    // MARK: - Checking a step

    /// What of `e` the step did not do; `rules` gains the rules behind each difference.
    private func check(_ e: RuleTestExpectation, _ o: Outcome, _ state: State, rules involved: inout Set<String>) -> [String] {
        if let why = o.unplayable { return ["cannot play the step: \(why)"] }
        var problems: [String] = []
        let matched = o.decisions.flatMap(\.matchedRules)
        switch (e.parked, o.parked) {
        case (nil, let why?): return ["the message cannot be decided and would be parked: \(why)"]
        case (let want?, nil): problems.append("expected the message to be parked" + (want.isEmpty ? "" : " (\(want))") + ", but it was decided")
        case (let want?, let why?) where !want.isEmpty && !why.contains(want):
            problems.append("parked, but the reason does not contain \(want.debugDescription): \(why)")
        default: break
        }
        if let rules = e.rules, rules != matched {
            involved.formUnion(Set(rules).symmetricDifference(matched))
            problems.append("rules matched: expected \(Self.list(rules)), got \(Self.list(matched))" + whyNot(rules.filter { !matched.contains($0) }, o))
        }
        if let noRule = e.noRule, noRule != matched.isEmpty {
            involved.formUnion(matched)
            problems.append(noRule ? "expected no rule to match, but \(Self.list(matched)) matched" : "expected a rule to match, but none did" + whyNot([], o))
        }
        if let dropped = e.dropped {
            let was = o.decisions.contains { d in d.timeline.contains { $0.kind == .dropped } }
            if dropped != was {
                involved.formUnion(matched)
                problems.append(dropped ? "expected the message to be dropped, but no drop rule matched" : "the message was dropped by \(Self.list(matched))")
            }
        }
        if let expected = e.sent {
            problems += checkSent(expected, o.sent, rules: &involved)
        }
        if let timers = e.timers, timers != o.timers.map(\.type) {
            involved.formUnion(o.timers.map(\.rule))
            problems.append("timers scheduled: expected \(Self.list(timers)), got \(Self.list(o.timers.map(\.type)))")
        }
        for (name, want) in e.attributes.sorted(by: { $0.key < $1.key }) {
            let got = state.conversation.attributes[name] ?? .null
            if got != want { problems.append("attribute '\(name)': expected \(Self.shown(want)), got \(Self.shown(got))") }
        }
        for (name, want) in e.counters.sorted(by: { $0.key < $1.key }) {
            let got = state.conversation.counters[name] ?? 0
            if got != want { problems.append("counter '\(name)': expected \(want), got \(got)") }
        }
        return problems
    }

    private func checkSent(_ expected: [ExpectedSend], _ sent: [StoredOutbound], rules involved: inout Set<String>) -> [String] {
        var problems: [String] = []
        if expected.count != sent.count {
            involved.formUnion(sent.map(\.rule))
            problems.append("expected \(expected.count) message(s) sent, got \(sent.count): "
                + (sent.isEmpty ? "none" : sent.map { "\($0.type) to \($0.target) (rule '\($0.rule)')" }.joined(separator: ", ")))
        }
        for (n, (want, got)) in zip(expected, sent).enumerated() {
            let before = problems.count
            defer { if problems.count > before { involved.insert(got.rule) } }
            let which = "sent[\(n)] (\(got.type) to \(got.target), rule '\(got.rule)')"
            if want.to != got.target { problems.append("\(which): expected it to go to '\(want.to)'") }
            if let type = want.type, type != got.type { problems.append("\(which): expected type '\(type)'") }
            let delay = got.delayMs == 0 ? nil : got.delayMs
            if let d = want.delayMs, d != delay { problems.append("\(which): expected a delay of \(Engine.format(ms: d)), got \(delay.map { Engine.format(ms: $0) } ?? "none")") }
            guard want.body != nil || want.contains != nil || !want.paths.isEmpty else { continue }
            guard let body = try? JSON.parse(got.body) else {
                problems.append("\(which): its body is not JSON: \(Engine.excerpt(got.body))")
                continue
            }
            if let b = want.body {
                problems += Self.differences(b, body, at: "$", subset: false).map { "\(which) body: \($0)" }
            }
            if let c = want.contains {
                problems += Self.differences(c, body, at: "$", subset: true).map { "\(which) body: \($0)" }
            }
            for p in want.paths {
                let value = p.path.first(body) ?? .null
                if value != p.value { problems.append("\(which) body at \(p.text): expected \(Self.shown(p.value)), got \(Self.shown(value))") }
            }
        }
        return problems
    }

    /// Why the named rules (or, with none named, every rule) did not match the step's last message.
    /// Why `rules` (every rule, when empty) did not match the step's last message: what the engine said
    /// when no rule matched, else explained against the message and the conversation it met.
    private func whyNot(_ rules: [String], _ o: Outcome) -> String {
        guard let d = o.decisions.last else { return "" }
        var misses: [(rule: String, reason: String)] = []
        if let note = d.timeline.last(where: { $0.kind == .noRule }), let body = note.body, case .array(let recorded)? = try? JSON.parse(body) {
            misses = recorded.compactMap { m in m["rule"]?.stringValue.flatMap { r in m["reason"]?.stringValue.map { (r, $0) } } }
        } else if let s = o.situations.last {
            var event = s.event
            event.ack = s.acked.map { AckedMessage(messageId: $0.messageId, type: $0.type, rule: $0.rule, target: $0.target, body: $0.body) }
            event.now = s.now
            misses = engine.explain(event, conversation: s.conversation).map { ($0.rule, $0.reason) }
        }
        let reasons = misses.filter { rules.isEmpty || rules.contains($0.rule) }.map { "'\($0.rule)': \($0.reason)" }
        return reasons.isEmpty ? "" : " (" + reasons.joined(separator: "; ") + ")"
    }

    /// Where `got` differs from `want`: every member (with `subset`, only the members `want` names).
    static func differences(_ want: JSON, _ got: JSON, at path: String, subset: Bool) -> [String] {
        switch (want, got) {
        case (.object(let w), .object(let g)):
            var out: [String] = []
            for key in w.keys.sorted() {
                let p = path + "." + key
                if let gv = g[key] { out += differences(w[key]!, gv, at: p, subset: subset) } else { out.append("\(p): expected \(shown(w[key]!)), missing") }
            }
            if !subset {
                for key in g.keys.sorted() where w[key] == nil { out.append("\(path).\(key): not expected, got \(shown(g[key]!))") }
            }
            return out
        case (.array(let w), .array(let g)) where w.count == g.count:
            return zip(w, g).enumerated().flatMap { differences($0.element.0, $0.element.1, at: "\(path)[\($0.offset)]", subset: subset) }
        default:
            return want == got ? [] : ["\(path): expected \(shown(want)), got \(shown(got))"]
        }
    }

    static func shown(_ v: JSON) -> String {
        let text = v.serializedString
        return text.count <= 120 ? text : String(text.prefix(120)) + "..."
    }

    static func list(_ names: [String]) -> String {
        names.isEmpty ? "none" : names.map { "'\($0)'" }.joined(separator: ", ")
    }
}

extension RuleTestRunner {
    /// JUnit XML (one suite, one test case per rule test), for CI systems that show test reports.
    package static func junit(_ results: [RuleTestResult], suite: String) -> String {
        func escape(_ s: String) -> String {
            var out = ""
            for ch in s.unicodeScalars {
                switch ch {
                case "&": out += "&amp;"
                case "<": out += "&lt;"
                case ">": out += "&gt;"
                case "\"": out += "&quot;"
                case "\n", "\t": out.unicodeScalars.append(ch)
                default:
                    // XML 1.0 has no other control characters.
                    if ch.value >= 0x20 { out.unicodeScalars.append(ch) }
                }
            }
            return out
        }
        let failures = results.filter { !$0.passed }.count
        let time = results.reduce(0) { $0 + $1.seconds }
        var xml = #"<?xml version="1.0" encoding="UTF-8"?>"# + "\n"
        xml += #"<testsuite name="\#(escape(suite))" tests="\#(results.count)" failures="\#(failures)" errors="0" time="\#(String(format: "%.3f", time))">"# + "\n"
        for r in results {
            xml += #"  <testcase classname="\#(escape(r.location.file))" name="\#(escape(r.name))" time="\#(String(format: "%.3f", r.seconds))">"#
            if r.passed {
                xml += "</testcase>\n"
            } else {
                xml += "\n" + #"    <failure message="\#(escape(r.failures[0]))">\#(escape(r.failures.joined(separator: "\n")))</failure>"# + "\n  </testcase>\n"
            }
        }
        return xml + "</testsuite>\n"
    }
}
