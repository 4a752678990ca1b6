import Foundation
import JSONPath

/// `switchboard rules capture`: a rule test written from a real conversation's timeline. Each message the
/// conversation received (a ticket update, an ack, a timer firing) becomes a step, with the recorded time
/// between them as `advance` steps (so timers come due as they did); each step expects the rules that
/// matched and the messages sent, with their whole bodies. Against the configuration that decided the
/// conversation it passes; once a rule, mapping or translation it used changes, it fails naming the rule.
package enum Capture {
    package struct NotReplayable: Error, CustomStringConvertible {
        package var description: String
    }

    /// What replaces a personal value (`endpoints.<name>.personal`) wherever it appears.
    package static let redacted = "(redacted)"

    /// The entries that open a decided message; what follows one belongs to it.
    package static let openings: Set<TimelineKind> = [.received, .acked, .ackError, .waiting, .timerFired]

    /// A conversation's timeline cut into its decided messages (an opening entry, what followed it, and the
    /// opening message's body), checked to start from nothing and to have every body it needs.
    static func decided(_ timeline: [TimelineEntry]) throws(NotReplayable) -> [(opening: TimelineEntry, rest: [TimelineEntry], body: JSON?)] {
        var steps: [(opening: TimelineEntry, rest: [TimelineEntry], body: JSON?)] = []
        for e in timeline {
            if openings.contains(e.kind) {
                steps.append((e, [], nil))
            } else if !steps.isEmpty {
                steps[steps.count - 1].rest.append(e)
            }
        }
        guard let first = steps.first?.opening else { throw NotReplayable(description: "the conversation has no recorded message") }
        guard first.met == 0 else {
            throw NotReplayable(description: first.met == nil
                ? "its first recorded message was decided before the timeline recorded the state it met"
                : "its first recorded message met version \(first.met!): the messages before it are no longer recorded (retention)")
        }
        for n in steps.indices where steps[n].opening.kind != .timerFired {
            guard let text = steps[n].opening.body, let body = try? JSON.parse(text) else {
                let o = steps[n].opening
                throw NotReplayable(description: "the body of message '\(o.messageId ?? "?")' (\(o.at)) was not kept (settings.timeline_bodies, or pruned)")
            }
            steps[n].body = body
        }
        return steps
    }

    /// How far past its recorded time a captured timer firing advances the test's clock.
    static let firingSlackMs = 10

    /// The conversation as a rule test: each decided message a step, after an `advance` of the recorded gap
    /// (a timer firing is that `advance`); each step expects the rules that matched and every message sent,
    /// with its body from `sentBodies` (the outbox). Steps are located at "conversation <id>", line = the
    /// step's number. Nothing is redacted: `rules replay` runs it and writes nothing; `test` writes it.
    package static func testCase(
        name: String? = nil, conversationId: String, timeline: [TimelineEntry], sentBodies: [String: Data]
    ) throws(NotReplayable) -> RuleTestCase {
        let recorded = try decided(timeline)
        let file = "conversation \(conversationId)"
        var steps: [RuleTestStep] = []
        var at = recorded[0].opening.at
        func add(_ action: RuleTestStep.Action, _ expect: RuleTestExpectation) {
            steps.append(RuleTestStep(action: action, location: SourceLocation(file: file, line: steps.count + 1), expect: expect, at: at))
        }
        // The test's clock in whole milliseconds since the first message, and each step's recorded time on
        // the same scale: a gap is measured from where the test's clock is, not from the previous step's
        // exact time, so rounding does not pile up over many steps (a timer that fired exactly when due
        // was once short of due by 2 ms in its capture, and did not fire in the test).
        let start = recorded[0].opening.at
        var clockMs = 0
        var sent: [(id: String, to: String, type: String)] = []
        for step in recorded {
            let o = step.opening
            let gap = Int((o.at.timeIntervalSince(start) * 1000).rounded()) - clockMs
            at = o.at
            var expect = RuleTestExpectation()
            expect.rules = step.rest.filter { $0.kind == .ruleMatched || $0.kind == .dropped }.compactMap(\.rule)
            recordedState(step.rest, into: &expect)
            expect.sent = step.rest.filter { $0.kind == .sent }.map { s in
                var send = ExpectedSend(location: SourceLocation(file: file, line: steps.count + 1), to: s.endpoint ?? "")
                send.type = s.messageType
                send.delayMs = (s.delayMs ?? 0) > 0 ? s.delayMs : nil
                if let id = s.messageId, let data = sentBodies[id], let body = try? JSON.parse(data) { send.body = body }
                return send
            }
            switch (o.kind, step.body) {
            case (.received, let body?):
                if gap >= 1 {
                    add(.advance(ms: gap), quiet)
                    clockMs += gap
                }
                add(.message(endpoint: o.endpoint ?? "", type: o.messageType, body: body), expect)
            case (_, let body?):
                if gap >= 1 {
                    add(.advance(ms: gap), quiet)
                    clockMs += gap
                }
                // Which of the messages of its type sent to that endpoint it answered: the candidate's send of
                // the same rank gets the answer (a replay whose candidate sends more or fewer says so).
                let same = sent.filter { $0.to == o.endpoint && $0.type == o.messageType }
                let nth = same.firstIndex { $0.id == o.answers }.map { $0 + 1 }
                add(.ack(endpoint: o.endpoint ?? "", answering: o.messageType, body: body, nth: nth), expect)
            default:
                // A timer firing: the broker expires a delayed message by its own clock, which may run a few ms
                // ahead of ours (seen: a 1 s timer recorded as firing 998 ms after it was set). The test must
                // fire it, so its advance goes a little past the recorded gap; the next gap, measured from the
                // test's clock, gives the slack back.
                let advance = max(gap, 1) + Self.firingSlackMs
                add(.advance(ms: advance), expect)
                clockMs += advance
            }
            sent += step.rest.filter { $0.kind == .sent }.map { ($0.messageId ?? "", $0.endpoint ?? "", $0.messageType ?? "") }
        }
        return RuleTestCase(
            name: name ?? conversationId, location: SourceLocation(file: file, line: 0), start: ConversationSnapshot(id: conversationId), steps: steps)
    }

    /// What a decided message changed, read back from its timeline entries: the counters' new values
    /// (`name: 2 -> 3`), the attributes' new values where the entry holds the whole value (an excerpt of a
    /// long one cannot be compared), and the timers scheduled (`timer 'name' in 1m`).
    static func recordedState(_ entries: [TimelineEntry], into expect: inout RuleTestExpectation) {
        var timers: [String] = []
        for e in entries {
            switch e.kind {
            case .counter:
                guard let arrow = e.detail.range(of: " -> ", options: .backwards), let value = Int(e.detail[arrow.upperBound...]),
                    let colon = e.detail[..<arrow.lowerBound].range(of: ": ", options: .backwards)
                else { continue }
                expect.counters[String(e.detail[..<colon.lowerBound])] = value
            case .attribute:
                guard let colon = e.detail.range(of: ": ") else { continue }
                let name = String(e.detail[..<colon.lowerBound])
                let change = e.detail[colon.upperBound...]
                // The new value: the text after the last " -> " that reads as a whole JSON value or "(none)".
                var search = change.endIndex
                while let arrow = change.range(of: " -> ", options: .backwards, range: change.startIndex..<search) {
                    let text = String(change[arrow.upperBound...])
                    if text == "(none)" {
                        expect.attributes[name] = .null
                        break
                    }
                    if !text.hasSuffix("..."), let value = try? JSON.parse(Data(text.utf8)) {
                        expect.attributes[name] = value
                        break
                    }
                    search = arrow.lowerBound
                }
            case .delayScheduled:
                guard let start = e.detail.range(of: "timer '"), let end = e.detail.range(of: "' in ", options: .backwards) else { continue }
                timers.append(String(e.detail[start.upperBound..<end.lowerBound]))
            default: continue
            }
        }
        expect.timers = timers
    }

    /// An `advance` between recorded messages: nothing came due in it.
    private static let quiet: RuleTestExpectation = {
        var e = RuleTestExpectation()
        e.rules = []
        return e
    }()

    /// The test file's text: `testCase` written out, with the values of each endpoint's personal fields
    /// (`personal`: JSONPaths by endpoint) replaced by `redacted` wherever they appear, in the messages and
    /// in the bodies expected alike (a template copies them).
    package static func test(
        name: String, timeline: [TimelineEntry], sentBodies: [String: Data], personal: [String: [JSONPath]]
    ) throws(NotReplayable) -> String {
        let conversationId = timeline.first?.conversationId ?? ""
        let test = try testCase(name: name, conversationId: conversationId, timeline: timeline, sentBodies: sentBodies)
        var secrets: Set<String> = []
        for step in test.steps {
            switch step.action {
            case .message(let endpoint, _, let body), .ack(let endpoint, _, let body, _):
                for path in personal[endpoint] ?? [] {
                    for value in path.select(body) {
                        if let s = value.scalarText, s.count >= 3 { secrets.insert(s) }
                    }
                }
            case .advance: break
            }
        }
        let longestFirst = secrets.sorted { $0.count > $1.count }
        func clean(_ v: JSON) -> String {
            func walk(_ v: JSON) -> JSON {
                switch v {
                case .string(var s):
                    for secret in longestFirst { s = s.replacingOccurrences(of: secret, with: redacted) }
                    return .string(s)
                case .array(let a): return .array(a.map(walk))
                case .object(let o): return .object(o.mapValues(walk))
                default: return v
                }
            }
            return walk(v).serializedString
        }

        var lines = [
            "# Captured from conversation \(conversationId) by `switchboard rules capture`: its recorded messages,",
            "# the rules that matched and what was sent. Personal fields are \(redacted).",
            "tests:",
            "  - name: \(yaml(name))",
            "    steps:",
        ]
        for step in test.steps {
            switch step.action {
            case .advance(let ms):
                lines.append("      - advance: \(ms)ms")
            case .message(let endpoint, let type, let body):
                lines.append("      - from: \(yaml(endpoint))")
                if let type { lines.append("        type: \(yaml(type))") }
                lines.append("        body: \(clean(body))")
            case .ack(let endpoint, let answering, let body, let nth):
                lines.append("      - ack: \(yaml(endpoint))")
                if let answering { lines.append("        answering: \(yaml(answering))") }
                if let nth { lines.append("        nth: \(nth)") }
                lines.append("        body: \(clean(body))")
            }
            let e = step.expect
            guard let sent = e.sent else {
                lines.append("        expect: { rules: [" + (e.rules ?? []).map(yaml).joined(separator: ", ") + "] }")
                continue
            }
            lines.append("        expect:")
            lines.append("          rules: [" + (e.rules ?? []).map(yaml).joined(separator: ", ") + "]")
            lines.append(sent.isEmpty ? "          sent: []" : "          sent:")
            for s in sent {
                var fields = ["to: \(yaml(s.to))"]
                if let type = s.type { fields.append("type: \(yaml(type))") }
                if let delay = s.delayMs { fields.append("delay: \(delay)ms") }
                if let body = s.body { fields.append("body: \(clean(body))") }
                lines.append("            - { " + fields.joined(separator: ", ") + " }")
            }
            if let timers = e.timers { lines.append("          timers: [" + timers.map(yaml).joined(separator: ", ") + "]") }
            if !e.counters.isEmpty {
                lines.append("          counters: { " + e.counters.sorted { $0.key < $1.key }.map { "\(yaml($0.key)): \($0.value)" }.joined(separator: ", ") + " }")
            }
            if !e.attributes.isEmpty {
                lines.append("          attributes: { " + e.attributes.sorted { $0.key < $1.key }.map { "\(yaml($0.key)): \(clean($0.value))" }.joined(separator: ", ") + " }")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// A YAML scalar: JSON's double-quoted string (valid YAML), so no name or value is read as anything else.
    static func yaml(_ s: String) -> String {
        JSON.string(s).serializedString
    }
}
