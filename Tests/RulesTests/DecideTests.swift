import Foundation
import JSONPath
import Testing

@testable import Rules

/// The whole decision for one message, without a broker or a store: linking, ack semantics, timeline
/// entries, outbound and timer ids.
@Suite struct DecideTests {
    let rules = """
        rules:
          - name: to-vendor
            from: customer-a
            counters: [{counter: n, increment: 1}]
            send: [{to: vendor-x, type: update, body: {number: {field: $.number}, n: {counter: n}}}]
            schedule: [{timer: check, after: 2s}]
          - name: ok-ack
            from: vendor-x
            type: ack
            when: {field: $.status, equals: ok}
            set: [{attribute: acked, value: yes}]
          - name: checked
            timer: check
            send: [{to: customer-a, type: comment, body: {done: true}}]
        """
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    /// Conversation ids are 32 hex digits (what outbound ids embed).
    let cid = "0123456789abcdef0123456789abcdef"

    func engine() throws -> Engine { Engine(config: try load(rules)) }

    func ticket(_ body: String, conversation: ConversationSnapshot) throws -> Situation {
        let e = try event(body, refs: (try JSON.parse(body))["vx"].flatMap { $0.stringValue.map { ["vendor-x": $0] } } ?? [:])
        return Situation(
            endpoint: "customer-a", messageId: "m1", route: MessageIds.route(endpoint: "customer-a", ticket: e.ticketId ?? ""),
            event: e, conversation: conversation, now: now)
    }

    @Test func aFirstMessageStartsTheConversationAndLinksWhatItNames() throws {
        let s = try ticket(#"{"number":"INC1","vx":"VX-9"}"#, conversation: ConversationSnapshot(id: cid))
        let d = try engine().decide(s)
        #expect(d.newReferences == [TicketRef("customer-a", "INC1"), TicketRef("vendor-x", "VX-9")])
        // Its own ticket starts the conversation (no "linked" entry); the vendor's ticket is a link.
        #expect(d.timeline.map(\.kind.rawValue) == ["received", "linked", "rule-matched", "counter", "delay-scheduled", "sent"])
        #expect(d.timeline.allSatisfy { $0.conversationId == cid && $0.at == now })
        let inbound = MessageIds.inboundHash(endpoint: "customer-a", messageId: "m1", version: 0)
        #expect(d.outbox.map(\.messageId) == [
            MessageIds.outbound(conversation: cid, route: s.route, inbound: inbound, index: 0),
            MessageIds.outbound(conversation: cid, route: s.route, inbound: inbound, index: 0, timer: true),
        ])
        #expect(d.outbox.map(\.kind) == [.message, .timer])
        #expect(MessageIds.parse(outbound: d.outbox[0].messageId)?.route == s.route)
        #expect(try JSON.parse(d.outbox[0].body) == ["number": "INC1", "n": 1])
        #expect(d.next.version == 1 && d.next.shownCounters == ["n": 1] && d.next.references.count == 2)
        // The loop breaker's window opened with this message, on no timeline entry.
        #expect(d.next.counters[LoopBreaker.countCounter] == 1 && d.next.counters[LoopBreaker.sinceCounter] == Int(now.timeIntervalSince1970))
        #expect(!d.timeline.contains { $0.detail.contains("sb.loop") })
        // The same message decided again (after a crash) names its messages the same.
        #expect(try engine().decide(s).outbox.map(\.messageId) == d.outbox.map(\.messageId))
        // Applied again on a later state (the store forgot it: past the dedupe window), it is a fresh
        // effect with fresh ids.
        var later = s
        later.conversation.version = 7
        #expect(Set(try engine().decide(later).outbox.map(\.messageId)).isDisjoint(with: d.outbox.map(\.messageId)))
    }

    /// What a later run of the conversation's history needs: the opening entry of each message names the
    /// configuration that decided it and the version it met (0: the conversation started empty).
    @Test func theOpeningEntryNamesTheConfigurationAndTheVersionMet() throws {
        var config = try load(rules)
        config.source.contentHash = String(repeating: "ab", count: 32)
        let first = try Engine(config: config).decide(try ticket(#"{"number":"INC1"}"#, conversation: ConversationSnapshot(id: cid)))
        #expect(first.timeline[0].kind == .received && first.timeline[0].configuration == "abababababab" && first.timeline[0].met == 0)
        #expect(first.timeline.dropFirst().allSatisfy { $0.configuration == nil && $0.met == nil })
        let c = ConversationSnapshot(id: "c1", version: 3, references: ["customer-a": "INC1"])
        let acked = try Engine(config: config).decide(try ack(#"{"status":"ok"}"#, conversation: c))
        #expect(acked.timeline[0].kind == .acked && acked.timeline[0].met == 3 && acked.timeline[0].configuration == "abababababab")
    }

    @Test func aReferenceAnotherConversationOwnsIsNotLinked() throws {
        var s = try ticket(#"{"number":"INC1","vx":"VX-9"}"#, conversation: ConversationSnapshot(id: "c1"))
        s.takenElsewhere = [TicketRef("vendor-x", "VX-9"): "c-other"]
        let d = try engine().decide(s)
        #expect(d.newReferences == [TicketRef("customer-a", "INC1")])
        #expect(d.timeline.contains { $0.kind == .warning && $0.detail.contains("already belongs to conversation c-other") })
    }

    func ack(_ body: String, conversation: ConversationSnapshot) throws -> Situation {
        var e = try event(body, from: "vendor-x", type: "ack")
        e.ticketId = nil
        let acked = StoredOutbound(
            messageId: "sb-out-1", conversationId: conversation.id, inbound: InboundKey("customer-a", "m0"), target: "vendor-x",
            type: "create", rule: "to-vendor", body: Data("{}".utf8))
        return Situation(endpoint: "vendor-x", messageId: "a1", route: 7, event: e, conversation: conversation, acked: acked, now: now)
    }

    @Test func anOkAckLinksTheTicketItCreated() throws {
        let c = ConversationSnapshot(id: "c1", version: 3, references: ["customer-a": "INC1"])
        let d = try engine().decide(try ack(#"{"status":"ok","key":"VX-5"}"#, conversation: c))
        #expect(d.newReferences == [TicketRef("vendor-x", "VX-5")])
        #expect(d.timeline.map(\.kind.rawValue) == ["acked", "linked", "rule-matched", "attribute"])
        #expect(d.timeline[0].detail == "ok ack of create sb-out-1 to vendor-x")
        #expect(d.failedOutbound.isEmpty && d.next.version == 4)
    }

    @Test func anErrorAckNoRuleHandlesMarksTheMessageFailed() throws {
        let c = ConversationSnapshot(id: "c1", version: 3, references: ["customer-a": "INC1"])
        let d = try engine().decide(try ack(#"{"status":"error","key":"VX-5","message":"no"}"#, conversation: c))
        #expect(d.newReferences.isEmpty)
        #expect(d.timeline.map(\.kind.rawValue) == ["ack-error", "ack-unhandled"])
        #expect(d.timeline[0].detail == "error ack of create sb-out-1 to vendor-x: no")
        #expect(d.failedOutbound.keys.sorted() == ["sb-out-1"])
    }

    @Test func moreMessagesThanTheLoopBreakerAllowsWithinItsWindowAreParkedUntilItPasses() throws {
        let engine = Engine(config: try load(rules + "\nsettings: {loop_breaker: {messages: 3, within: 10m}}"))
        var c = ConversationSnapshot(id: cid, version: 1, references: ["customer-a": "INC1"])
        func next(at seconds: Double) throws -> MessageDecision {
            var s = try ticket(#"{"number":"INC1"}"#, conversation: c)
            s.now = now.addingTimeInterval(seconds)
            let d = try engine.decide(s)
            c = d.next
            return d
        }
        for n in 0..<3 { _ = try next(at: Double(n)) }
        do {
            _ = try next(at: 10)
            Issue.record("the fourth message within 10 minutes was decided")
        } catch let error as Unprocessable {
            #expect(error.code == "loop" && error.description.contains("settings.loop_breaker allows 3"), "\(error)")
        }
        // Acks and timers do not count; after the window a message starts a new one.
        #expect(try next(at: 601).next.counters[LoopBreaker.countCounter] == 1)
        #expect(configErrors("settings: {loop_breaker: {messages: 1}}").map(\.description).contains { $0.contains("settings.loop_breaker.messages") })
        let off = try load(rules + "\nsettings: {loop_breaker: off}")
        #expect(off.settings.loopBreaker == nil)
    }

    @Test func aWaitingAckIsOnTheTimelineAndNoRuleOrPolicySeesIt() throws {
        let c = ConversationSnapshot(id: "c1", version: 3, references: ["customer-a": "INC1"])
        let body = #"{"status":"waiting","code":429,"scope":"ticket","key":"VX-5","message":"update waits (ticket): 429 per issue"}"#
        let d = try engine().decide(try ack(body, conversation: c))
        // Not an answer: nothing linked, nothing failed, no rule (not even the ack rules) matched.
        #expect(d.timeline.map(\.kind.rawValue) == ["waiting"])
        #expect(d.timeline[0].detail == "waiting ack of create sb-out-1 to vendor-x: update waits (ticket): 429 per issue")
        #expect(d.newReferences.isEmpty && d.failedOutbound.isEmpty && d.outbox.isEmpty)
    }

    @Test func anAckFromAnotherEndpointThanTheTargetIsRefusedNamingBoth() throws {
        let c = ConversationSnapshot(id: "c1", version: 3, references: ["customer-a": "INC1"])
        for status in ["ok", "error"] {
            var s = try ack(#"{"status":"\#(status)","key":"FORGED-1"}"#, conversation: c)
            s.endpoint = "customer-a"
            s.event.endpoint = "customer-a"
            #expect {
                try engine().decide(s)
            } throws: { error in
                "\(error)" == "ack from endpoint 'customer-a' for message 'sb-out-1', which was sent to endpoint 'vendor-x': "
                    + "only the endpoint a message was sent to may acknowledge it"
            }
        }
        // Nor may anyone answer a timer (its id has the shape of an outbound message's).
        var s = try ack(#"{"status":"ok"}"#, conversation: c)
        s.acked?.kind = .timer
        s.acked?.target = "vendor-x"
        #expect(throws: Unprocessable.self) { try engine().decide(s) }
    }

    @Test func aTimerFiresOnItsConversation() throws {
        var e = InboundEvent(endpoint: "switchboard", messageId: "t1", type: "timer", body: ["timer": "check", "conversation": .string(cid)], ticketId: nil)
        e.timer = "check"
        let c = ConversationSnapshot(id: cid, version: 2, references: ["customer-a": "INC1"])
        let d = try engine().decide(Situation(endpoint: "switchboard", messageId: "t1", route: 9, event: e, conversation: c, now: now))
        #expect(d.newReferences.isEmpty)
        #expect(d.timeline.map(\.kind.rawValue) == ["timer-fired", "rule-matched", "sent"])
        #expect(d.outbox.map(\.target) == ["customer-a"])
        #expect(MessageIds.parse(outbound: d.outbox[0].messageId)?.route == 9)
    }
}
