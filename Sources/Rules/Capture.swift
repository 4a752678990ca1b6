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

    /// The test file's text. `sentBodies`: the outbound bodies by message id (the outbox); `personal`: the
    /// JSONPaths of each endpoint's personal fields.
    /// A conversation's timeline cut into its decided messages (an opening entry and what followed it),
    /// checked to start from nothing.
    static func decided(_ timeline: [TimelineEntry]) throws(NotReplayable) -> [(opening: TimelineEntry, rest: [TimelineEntry])] {
        let openings: Set<TimelineKind> = [.received, .acked, .ackError, .timerFired]
        var steps: [(opening: TimelineEntry, rest: [TimelineEntry])] = []
        for e in timeline {
            if openings.contains(e.kind) {
                steps.append((e, []))
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
        for step in steps where step.opening.kind != .timerFired {
            guard let text = step.opening.body, (try? JSON.parse(text)) != nil else {
                throw NotReplayable(description: "the body of message '\(step.opening.messageId ?? "?")' (\(step.opening.at)) was not kept (settings.timeline_bodies, or pruned)")
            }
        }
        return steps
    }

    /// The conversation as a rule test (no redaction: nothing is written), for `rules replay`. Steps are
    /// located at "conversation <id>", line = the step's number.
    package static func testCase(conversationId: String, timeline: [TimelineEntry], sentBodies: [String: Data]) throws(NotReplayable) -> RuleTestCase {
        let recorded = try decided(timeline)
        let file = "conversation \(conversationId)"
        var steps: [RuleTestStep] = []
        var previous = recorded[0].opening.at
        for step in recorded {
            let o = step.opening
            let gap = Int((o.at.timeIntervalSince(previous) * 1000).rounded())
            previous = o.at
            var expect = RuleTestExpectation()
            expect.rules = step.rest.filter { $0.kind == .ruleMatched || $0.kind == .dropped }.compactMap(\.rule)
            expect.sent = step.rest.filter { $0.kind == .sent }.map { s in
                var send = ExpectedSend(location: SourceLocation(file: file, line: steps.count + 1), to: s.endpoint ?? "")
                send.type = s.messageType
                send.delayMs = (s.delayMs ?? 0) > 0 ? s.delayMs : nil
                if let id = s.messageId, let data = sentBodies[id], let body = try? JSON.parse(data) { send.body = body }
                return send
            }
            if o.kind == .timerFired {
                steps.append(RuleTestStep(action: .advance(ms: max(gap, 1)), location: SourceLocation(file: file, line: steps.count + 1), expect: expect))
                continue
            }
            if gap >= 1 {
                var quiet = RuleTestExpectation()
                quiet.rules = []
                steps.append(RuleTestStep(action: .advance(ms: gap), location: SourceLocation(file: file, line: steps.count + 1), expect: quiet))
            }
            let body = (try? JSON.parse(o.body ?? "")) ?? .null
            let action: RuleTestStep.Action = o.kind == .received
                ? .message(endpoint: o.endpoint ?? "", type: o.messageType, body: body)
                : .ack(endpoint: o.endpoint ?? "", answering: o.messageType, body: body)
            steps.append(RuleTestStep(action: action, location: SourceLocation(file: file, line: steps.count + 1), expect: expect))
        }
        return RuleTestCase(name: conversationId, location: SourceLocation(file: file, line: 0), start: ConversationSnapshot(id: conversationId), steps: steps)
    }

    package static func test(
        name: String, timeline: [TimelineEntry], sentBodies: [String: Data], personal: [String: [JSONPath]]
    ) throws(NotReplayable) -> String {
        let steps = try decided(timeline)
        let first = steps[0].opening
        // The personal values of the inbound bodies, replaced everywhere they appear (a template copies them).
        var secrets: Set<String> = []
        var bodies: [Int: JSON] = [:]
        for (n, step) in steps.enumerated() where step.opening.kind != .timerFired {
            guard let text = step.opening.body, let body = try? JSON.parse(text) else { continue }  // checked by `decided`
            bodies[n] = body
            for path in personal[step.opening.endpoint ?? ""] ?? [] {
                for value in path.select(body) {
                    if let s = value.scalarText, s.count >= 3 { secrets.insert(s) }
                }
            }
        }
        func clean(_ v: JSON) -> JSON {
            switch v {
            case .string(var s):
                for secret in secrets.sorted(by: { $0.count > $1.count }) { s = s.replacingOccurrences(of: secret, with: redacted) }
                return .string(s)
            case .array(let a): return .array(a.map(clean))
            case .object(let o): return .object(o.mapValues(clean))
            default: return v
            }
        }

        var lines = [
            "# Captured from conversation \(first.conversationId) by `switchboard rules capture`: its recorded messages,",
            "# the rules that matched and what was sent. Personal fields are \(redacted).",
            "tests:",
            "  - name: \(yaml(name))",
            "    steps:",
        ]
        var previous = first.at
        for (n, step) in steps.enumerated() {
            let o = step.opening
            let gap = Int((o.at.timeIntervalSince(previous) * 1000).rounded())
            previous = o.at
            if o.kind == .timerFired {
                lines.append("      - advance: \(max(gap, 1))ms")
            } else {
                if gap >= 1 {
                    lines.append("      - advance: \(gap)ms")
                    lines.append("        expect: { rules: [] }")
                }
                let body = clean(bodies[n]!).serializedString
                if o.kind == .received {
                    lines.append("      - from: \(yaml(o.endpoint ?? ""))")
                    if let type = o.messageType { lines.append("        type: \(yaml(type))") }
                } else {
                    lines.append("      - ack: \(yaml(o.endpoint ?? ""))")
                    if let type = o.messageType { lines.append("        answering: \(yaml(type))") }
                }
                lines.append("        body: \(body)")
            }
            let rules = step.rest.filter { $0.kind == .ruleMatched || $0.kind == .dropped }.compactMap(\.rule)
            lines.append("        expect:")
            lines.append("          rules: [" + rules.map(yaml).joined(separator: ", ") + "]")
            let sent = step.rest.filter { $0.kind == .sent }
            if sent.isEmpty {
                lines.append("          sent: []")
            } else {
                lines.append("          sent:")
                for s in sent {
                    var fields = ["to: \(yaml(s.endpoint ?? ""))"]
                    if let type = s.messageType { fields.append("type: \(yaml(type))") }
                    if let delay = s.delayMs, delay > 0 { fields.append("delay: \(delay)ms") }
                    if let id = s.messageId, let data = sentBodies[id], let body = try? JSON.parse(data) {
                        fields.append("body: \(clean(body).serializedString)")
                    }
                    lines.append("            - { " + fields.joined(separator: ", ") + " }")
                }
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// A YAML scalar: JSON's double-quoted string (valid YAML), so no name or value is read as anything else.
    static func yaml(_ s: String) -> String {
        JSON.string(s).serializedString
    }
}
