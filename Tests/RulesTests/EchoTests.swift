import Foundation
import JSONPath
import Testing

@testable import Rules

/// `endpoints.<name>.echo` (issue 26, "Echoes recognised"): a tool's webhook fires for our own writes too; a
/// message meeting one of its endpoint's echo conditions is said on the timeline and no rule sees it.
@Suite struct EchoTests {
    let config = """
        endpoints:
          customer-a:
            ticket_id: $.number
          jira:
            ticket_id: $.issue.key
            who: $.user.displayName
            references: {customer-a: $.issue.fields.customfield_10400}
            echo:
              - {field: $.user.accountId, in: [sb-integration-1, sb-integration-2]}
              - {field: $.changelog.generator, equals: switchboard}
              - {all: [{field: $.comment.id, exists: true}, {reference: customer-a, exists: false}]}
        rules:
          - name: to-customer
            from: jira
            send: [{to: customer-a, type: update, body: {number: {reference: customer-a}}}]
        """

    func decide(_ body: String) throws -> MessageDecision {
        let engine = Engine(config: try ConfigLoader.load(files: [("echo.yaml", config)], environment: [:]))
        let json = try JSON.parse(body)
        let event = InboundEvent(endpoint: "jira", messageId: "w1", type: "update", body: json, ticketId: "VX-1", who: nil, references: ["customer-a": "INC1"])
        let s = Situation(endpoint: "jira", messageId: "w1", route: 1, event: event, conversation: ConversationSnapshot(id: "c1", version: 2, references: ["customer-a": "INC1", "jira": "VX-1"]), now: Date())
        return try engine.decide(s)
    }

    @Test func ourIntegrationUsersWriteComingBackIsAnEchoAndNoRuleRuns() throws {
        let d = try decide(#"{"issue":{"key":"VX-1"},"user":{"accountId":"sb-integration-2"}}"#)
        #expect(d.timeline.map(\.kind) == [.received, .echo])
        #expect(d.timeline[1].detail == "echo of our own write to jira (its echo condition 1 matched): no rule ran")
        #expect(d.outbox.isEmpty)
        let stamped = try decide(#"{"issue":{"key":"VX-1"},"user":{"accountId":"human"},"changelog":{"generator":"switchboard"}}"#)
        #expect(stamped.timeline.last?.detail.contains("condition 2") == true && stamped.outbox.isEmpty)
    }

    @Test func aPersonsChangeIsNoEchoAndTheRulesRun() throws {
        let d = try decide(#"{"issue":{"key":"VX-1"},"user":{"accountId":"557058:f58131cb"},"comment":{"id":"10"}}"#)
        #expect(!d.timeline.contains { $0.kind == .echo })
        #expect(d.outbox.map(\.target) == ["customer-a"])
    }

    @Test func anEchoConditionNamingAnUnknownEndpointIsAnErrorWithItsPlace() {
        let bad = config.replacingOccurrences(of: "{reference: customer-a, exists: false}", with: "{reference: nowhere, exists: false}")
        #expect(throws: ConfigErrors.self) { try ConfigLoader.load(files: [("echo.yaml", bad)], environment: [:]) }
        do {
            _ = try ConfigLoader.load(files: [("echo.yaml", bad)], environment: [:])
        } catch {
            #expect(error.errors.map(\.description).contains { $0.hasPrefix("echo.yaml:11:") && $0.contains("unknown endpoint 'nowhere'") }, "\(error.errors)")
        }
    }
}
