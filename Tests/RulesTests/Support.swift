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
