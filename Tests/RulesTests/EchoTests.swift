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

    /// A comment event carries no stamp: the comments Switchboard made are kept from their acks (`comment_id`)
    /// and a comment webhook naming one is an echo; the ids are the engine's own, hidden where people read.
    @Test func aCommentWeCreatedComesBackAsAnEchoByItsId() throws {
        let engine = Engine(config: try ConfigLoader.load(files: [("echo.yaml", config)], environment: [:]))
        var c = ConversationSnapshot(id: "c1", version: 2, references: ["customer-a": "INC1", "jira": "VX-1"])
        func ack(_ id: String, status: String = "ok") throws -> MessageDecision {
            let body = try JSON.parse(#"{"status":"\#(status)","code":201,"operation":"comment","comment_id":"\#(id)"}"#)
            let event = InboundEvent(endpoint: "jira", messageId: "a-\(id)", type: "ack", body: body, ticketId: nil, who: nil, references: [:])
            let acked = StoredOutbound(
                messageId: "sb-out-\(id)", conversationId: "c1", inbound: InboundKey("customer-a", "m0"), target: "jira", type: "comment",
                rule: "to-jira", body: Data("{}".utf8))
            return try engine.decide(Situation(endpoint: "jira", messageId: "a-\(id)", route: 1, event: event, conversation: c, acked: acked, now: Date()))
        }
        func webhook(_ body: String) throws -> MessageDecision {
            let event = InboundEvent(endpoint: "jira", messageId: "w", type: "update", body: try JSON.parse(body), ticketId: "VX-1", who: nil, references: [:])
            return try engine.decide(Situation(endpoint: "jira", messageId: "w", route: 1, event: event, conversation: c, now: Date()))
        }
        let first = try ack("10050")
        #expect(first.attributes[Reserved.comments("jira")] == .some(.array([.string("10050")])))
        #expect(!first.timeline.contains { $0.kind == .attribute }, "the engine's bookkeeping is not on the timeline")
        c = first.next
        #expect(c.shownAttributes.isEmpty && c.attributes.count == 1)
        c = try ack("10051").next
        #expect(try ack("10052", status: "error").attributes.isEmpty, "a refused comment made nothing")
        // The comment's webhook, by a person's account (no echo condition holds): known by its id.
        let human = #""user":{"accountId":"557058:f58131cb"}"#
        let echo = try webhook(#"{"webhookEvent":"comment_created","issue":{"key":"VX-1"},\#(human),"comment":{"id":"10050"}}"#)
        #expect(echo.timeline.map(\.kind) == [.received, .echo] && echo.outbox.isEmpty)
        #expect(echo.timeline[1].detail == "echo of our own write to jira (comment 10050, which Switchboard created): no rule ran")
        #expect(try webhook(#"{"issue":{"key":"VX-1"},\#(human),"comment":{"id":"10051"}}"#).outbox.isEmpty)
        // Another comment, and a person editing ours, are changes the rules see.
        #expect(try webhook(#"{"webhookEvent":"comment_created","issue":{"key":"VX-1"},\#(human),"comment":{"id":"10053"}}"#).outbox.map(\.target) == ["customer-a"])
        #expect(try webhook(#"{"webhookEvent":"comment_updated","issue":{"key":"VX-1"},\#(human),"comment":{"id":"10050"}}"#).outbox.map(\.target) == ["customer-a"])
        // The newest 100 are kept.
        for n in 0..<(Reserved.keptComments + 5) { c = try ack("2\(n)").next }
        guard case .array(let kept)? = c.attributes[Reserved.comments("jira")] else { Issue.record("no ids kept"); return }
        #expect(kept.count == Reserved.keptComments && kept.first == .string("25") && kept.last == .string("2\(Reserved.keptComments + 4)"))
    }

    /// Jira's webhook for the issue Switchboard created can come before the create's answer (always, when
    /// that answer was lost and the issue is found by its label later): the echo must not take the ticket,
    /// or the ack could not link it to the conversation that made it.
    @Test func anEchoOfATicketNoConversationHasYetLinksNothing() throws {
        let engine = Engine(config: try ConfigLoader.load(files: [("echo.yaml", config)], environment: [:]))
        let body = try JSON.parse(#"{"webhookEvent":"jira:issue_created","issue":{"key":"VX-9"},"user":{"accountId":"sb-integration-1"}}"#)
        let event = InboundEvent(endpoint: "jira", messageId: "w9", type: "update", body: body, ticketId: "VX-9", who: nil, references: [:])
        let d = try engine.decide(Situation(endpoint: "jira", messageId: "w9", route: 1, event: event, conversation: ConversationSnapshot(id: "new"), now: Date()))
        #expect(d.newReferences.isEmpty && d.next.references.isEmpty && d.outbox.isEmpty)
        #expect(d.timeline.map(\.kind) == [.received, .echo])
        // A person's event of a new ticket still starts its conversation with the ticket.
        let person = try JSON.parse(#"{"webhookEvent":"jira:issue_created","issue":{"key":"VX-10"},"user":{"accountId":"557058:bob"}}"#)
        let e2 = InboundEvent(endpoint: "jira", messageId: "w10", type: "update", body: person, ticketId: "VX-10", who: nil, references: [:])
        let d2 = try engine.decide(Situation(endpoint: "jira", messageId: "w10", route: 1, event: e2, conversation: ConversationSnapshot(id: "new2"), now: Date()))
        #expect(d2.newReferences == [TicketRef("jira", "VX-10")])
    }

    @Test func rulesMayNotNameTheEnginesOwnAttributesOrCounters() {
        for bad in ["set: [{attribute: sb.comments.jira, value: x}]", "counters: [{counter: sb.loop.count, set: 0}]"] {
            let yaml = config.replacingOccurrences(of: "    send: [{to: customer-a", with: "    \(bad)\n    send: [{to: customer-a")
            do {
                _ = try ConfigLoader.load(files: [("echo.yaml", yaml)], environment: [:])
                Issue.record("loaded: \(bad)")
            } catch {
                #expect(error.errors.map(\.description).contains { $0.hasPrefix("echo.yaml:") && $0.contains("names starting with 'sb.' are Switchboard's own") }, "\(error.errors)")
            }
        }
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
