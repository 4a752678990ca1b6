import Foundation
import JSONPath
import Testing

@testable import Rules

let endpointsYAML = """
    endpoints:
      customer-a:
        ticket_id: $.number
        who: $.sys_updated_by
      vendor-x:
        ticket_id: $.issue.key
        type_field: $.webhookEvent
        references:
          customer-a: $.issue.fields.customfield_10400
    translations:
      prio:
        values: {"1": Highest, "2": High}
        default: Medium
      strict:
        values: {a: A}
    """

func load(_ rules: String, env: [String: String] = [:]) throws(ConfigErrors) -> SwitchboardConfig {
    try ConfigLoader.load(files: [("endpoints.yaml", endpointsYAML), ("rules.yaml", rules)], environment: env)
}

func configErrors(_ rules: String, env: [String: String] = [:]) -> [ConfigError] {
    do {
        _ = try load(rules, env: env)
        return []
    } catch {
        return error.errors
    }
}

func event(_ body: String, from endpoint: String = "customer-a", type: String = "update", refs: [String: String] = [:])
    throws -> InboundEvent
{
    let json = try JSON.parse(body)
    return InboundEvent(
        endpoint: endpoint, messageId: "m1", type: type, body: json,
        ticketId: json["number"]?.stringValue ?? "T1", who: json["sys_updated_by"]?.stringValue, references: refs)
}

func run(_ rules: String, _ e: InboundEvent, conversation: ConversationSnapshot = ConversationSnapshot(id: "c1"))
    throws -> Decision
{
    Engine(config: try load(rules)).evaluate(e, conversation: conversation)
}

/// A one-rule configuration that sends {"ok": true} to vendor-x when `when` holds.
func whenRule(_ when: String) -> String {
    """
    rules:
      - name: r
        from: customer-a
        when:
    \(when.split(separator: "\n").map { "      " + $0 }.joined(separator: "\n"))
        send:
          - to: vendor-x
            body: {ok: true}
    """
}

func matches(_ when: String, _ body: String, refs: [String: String] = [:]) throws -> Bool {
    try !run(whenRule(when), event(body), conversation: ConversationSnapshot(id: "c1", references: refs)).outbound.isEmpty
}

/// A conversation decided message by message as a worker decides it, keeping what the store would record
/// (its timeline, the bodies sent): what capture and replay are tested on.
struct Recording {
    let engine: Engine
    var conversation: ConversationSnapshot
    var timeline: [TimelineEntry] = []
    var bodies: [String: Data] = [:]

    init(_ config: SwitchboardConfig, id: String) {
        engine = Engine(config: config)
        conversation = ConversationSnapshot(id: id)
    }

    /// As `Replay.run` takes it.
    var recorded: (id: String, timeline: [TimelineEntry], sentBodies: [String: Data]) { (conversation.id, timeline, bodies) }

    /// A message from customer-a (the body as JSON text).
    @discardableResult
    mutating func message(_ body: String, id: String, at: Date) throws -> MessageDecision {
        try play(Situation(endpoint: "customer-a", messageId: id, route: 0, event: try event(body), conversation: conversation, now: at))
    }

    /// vendor-x answers `acked`.
    @discardableResult
    mutating func ack(_ body: String, id: String, answering acked: StoredOutbound, at: Date) throws -> MessageDecision {
        let e = InboundEvent(endpoint: "vendor-x", messageId: id, type: EventType.ack, body: try JSON.parse(body), ticketId: nil)
        return try play(Situation(endpoint: "vendor-x", messageId: id, route: 0, event: e, conversation: conversation, acked: acked, now: at))
    }

    /// A timer this conversation scheduled comes due.
    @discardableResult
    mutating func fire(_ timer: StoredOutbound, at: Date) throws -> MessageDecision {
        var e = InboundEvent(endpoint: MessageIds.timerEndpoint, messageId: timer.messageId, type: EventType.timer, body: try JSON.parse(timer.body), ticketId: nil)
        e.timer = timer.type
        return try play(Situation(endpoint: MessageIds.timerEndpoint, messageId: timer.messageId, route: 0, event: e, conversation: conversation, now: at))
    }

    private mutating func play(_ s: Situation) throws -> MessageDecision {
        let d = try engine.decide(s)
        timeline += d.timeline
        for o in d.outbox { bodies[o.messageId] = o.body }
        conversation = d.next
        return d
    }
}
