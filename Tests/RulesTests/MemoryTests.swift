import JSONPath
import Testing

@testable import Rules

/// Conversation attributes, counters, ack rules, timers and delays: the engine side of the two stories.
@Suite struct MemoryTests {
    let rules = """
        rules:
          - name: remember-origin
            from: customer-a
            set:
              - attribute: original_group
                value: {field: $.group}
                when: {field: $.group, equals: SAP Support, negate: true}
              - attribute: last_summary
                value: "${number}: ${short}"
          - name: hand-back
            from: vendor-x
            when: {field: $.status, equals: Returned to customer}
            send:
              - to: customer-a
                body: {group: {attribute: original_group}, note: "back from ${user}, was ${attr:original_group}"}
          - name: locked-retry
            from: vendor-x
            type: ack
            when:
              - {field: $.code, equals: locked, ignore_case: true}
              - {meta: acked_type, equals: update}
              - {counter: lock_retries, lt: 3}
            stop: true
            counters: [{counter: lock_retries, increment: 1}]
            schedule: [{timer: lock-retry, after: 1.5s}]
          - name: locked-give-up
            from: vendor-x
            type: ack
            when:
              - {field: $.code, equals: LOCKED}
              - {counter: lock_retries, gte: 3}
            counters: [{counter: lock_retries, reset: true}]
            send: [{to: customer-a, type: comment, body: {comment: "gave up"}}]
          - name: ack-ok
            type: ack
            when: {field: $.status, equals: ok}
            counters: [{counter: lock_retries, set: 0}]
          - name: retry
            timer: lock-retry
            when: {counter: lock_retries, gt: 0}
            send: [{to: vendor-x, type: update, delay: 250ms, body: {summary: {attribute: last_summary}, n: {counter: lock_retries}}}]
        """

    func eval(_ e: InboundEvent, _ c: ConversationSnapshot) throws -> Decision {
        Engine(config: try load(rules)).evaluate(e, conversation: c)
    }

    func ack(_ body: String, type: String = "update") throws -> InboundEvent {
        var e = try event(body, from: "vendor-x", type: "ack")
        e.ticketId = nil
        e.ack = AckedMessage(messageId: "sb-x", type: type, rule: "update-at-vendor", target: "vendor-x")
        return e
    }

    @Test func conditionalWriteRemembersOnlyTheOriginalGroup() throws {
        let first = try eval(try event(#"{"number":"INC1","short":"down","group":"Local Desk"}"#), ConversationSnapshot(id: "c"))
        #expect(first.attributeChanges["original_group"] == .some(.string("Local Desk")))
        #expect(first.attributeChanges["last_summary"] == .some(.string("INC1: down")))
        #expect(first.notes.contains { $0.kind == .attribute && $0.detail == #"original_group: (none) -> "Local Desk""# })
        // Reassigned to SAP Support: the remembered group stays.
        let later = try eval(try event(#"{"number":"INC1","short":"down","group":"SAP Support"}"#),
                             ConversationSnapshot(id: "c", attributes: ["original_group": "Local Desk", "last_summary": "INC1: down"]))
        #expect(later.attributeChanges.isEmpty)
    }

    /// The conversation keeps a long value whole; its timeline note shows the first 100 characters of each side.
    @Test func aLongAttributeValueIsExcerptedOnTheTimeline() throws {
        let long = String(repeating: "y", count: 300)
        let d = try eval(try event(#"{"number":"INC1","short":"\#(long)","group":"Local Desk"}"#),
                         ConversationSnapshot(id: "c", attributes: ["last_summary": .string("INC1: \(long)x")]))
        #expect(d.attributeChanges["last_summary"] == .some(.string("INC1: \(long)")))
        let note = try #require(d.notes.first { $0.kind == .attribute && $0.detail.hasPrefix("last_summary:") })
        let side = "\"INC1: " + String(repeating: "y", count: 93) + "..."
        #expect(note.detail == "last_summary: \(side) -> \(side)")
    }

    /// A long string is cut before it is serialized: the excerpt is still the serialized text's first 100
    /// characters, escapes and all, at every length around the limit.
    @Test func anExcerptIsTheSerializedTextsPrefix() throws {
        for n in 90...110 {
            for unit in ["y", "\"", "\n", "é", "✓", "\u{01}"] {
                let long = String(repeating: unit, count: n)
                for value in [JSON.string(long), ["b": .string(long), "a": 1, "c": [.null, true]], [.string(long), .string(long)]] {
                    let text = value.serializedString
                    let expected = text.utf8.count <= 100 ? text : String(text.prefix(100)) + "..."
                    #expect(Engine.excerpt(value) == expected, "\(n) x \(unit.debugDescription)")
                }
            }
        }
    }

    @Test func attributesAreReadInMappingsAndNeverSentUnasked() throws {
        let d = try eval(try event(#"{"status":"Returned to customer","user":"Bob"}"#, from: "vendor-x"),
                         ConversationSnapshot(id: "c", attributes: ["original_group": "Local Desk", "secret": "x"]))
        #expect(d.outbound.first?.body == ["group": "Local Desk", "note": "back from Bob, was Local Desk"])
    }

    @Test func errorAckIncrementsAndSchedulesUntilTheMaximumThenGivesUp() throws {
        var state = ConversationSnapshot(id: "c")
        for expected in 1...3 {
            let d = try eval(try ack(#"{"status":"error","code":"LOCKED"}"#), state)
            #expect(d.counterChanges == ["lock_retries": expected])
            #expect(d.timers == [TimerDraft(rule: "locked-retry", name: "lock-retry", afterMs: 1500)])
            #expect(d.outbound.isEmpty)
            #expect(d.notes.contains { $0.kind == .counter && $0.detail == "lock_retries: \(expected - 1) -> \(expected)" })
            #expect(d.notes.contains { $0.kind == .delayScheduled && $0.detail == "timer 'lock-retry' in 1500ms" })
            state.counters = d.counterChanges
        }
        let last = try eval(try ack(#"{"status":"error","code":"LOCKED"}"#), state)
        #expect(last.timers.isEmpty)
        #expect(last.outbound.map(\.type) == ["comment"])
        #expect(last.outbound.first?.body == ["comment": "gave up"])
        #expect(last.counterChanges == ["lock_retries": 0])
    }

    @Test func ackRulesMatchTheKindOfMessageAnswered() throws {
        let d = try eval(try ack(#"{"status":"error","code":"LOCKED"}"#, type: "create"), ConversationSnapshot(id: "c"))
        #expect(d.timers.isEmpty)
    }

    /// Nothing silent: an error ack that no rule handles marks the message failed, with what the ack said.
    @Test func anUnhandledErrorAckMarksTheMessageFailed() throws {
        let d = try eval(try ack(#"{"status":"error","code":"NO_SUCH_FIELD","message":"field x is unknown"}"#, type: "create"),
                         ConversationSnapshot(id: "c"))
        #expect(d.matchedRules.isEmpty)
        let said = try #require(d.failedOutbound.values.first)
        #expect(d.failedOutbound.count == 1 && said.contains("NO_SUCH_FIELD") && said.contains("field x is unknown"))
        #expect(d.notes.map(\.kind.rawValue) == ["ack-unhandled"])
        // Handled (a retry), or an ok ack that no rule wants: nothing is marked.
        #expect(try eval(try ack(#"{"status":"error","code":"LOCKED"}"#), ConversationSnapshot(id: "c")).failedOutbound.isEmpty)
        #expect(try eval(try ack(#"{"status":"ok"}"#, type: "create"), ConversationSnapshot(id: "c")).failedOutbound.isEmpty)
    }

    @Test func okAckEndsRetries() throws {
        let d = try eval(try ack(#"{"status":"ok"}"#), ConversationSnapshot(id: "c", counters: ["lock_retries": 2]))
        #expect(d.counterChanges == ["lock_retries": 0])
        let fired = try eval(timer("lock-retry"), ConversationSnapshot(id: "c", counters: [:]))
        #expect(fired.outbound.isEmpty)
    }

    func timer(_ name: String) -> InboundEvent {
        var e = InboundEvent(endpoint: "switchboard", messageId: "t1", type: "timer", body: [:], ticketId: nil)
        e.timer = name
        return e
    }

    @Test func timerRebuildsFromTheNewestAttributesWithADelay() throws {
        let d = try eval(timer("lock-retry"), ConversationSnapshot(id: "c", attributes: ["last_summary": "INC1: newest"], counters: ["lock_retries": 2]))
        #expect(d.outbound == [OutboundDraft(rule: "retry", target: "vendor-x", type: "update", body: ["summary": "INC1: newest", "n": 2], delayMs: 250)])
    }

    @Test func timersAndAcksOnlyMatchRulesThatAskForThem() throws {
        let greedy = """
            rules:
              - {name: anything, send: [{to: vendor-x, body: {x: 1}}]}
            """
        let cfg = try load(greedy)
        #expect(Engine(config: cfg).evaluate(timer("t"), conversation: ConversationSnapshot(id: "c")).outbound.isEmpty)
        #expect(Engine(config: cfg).evaluate(try ack("{}"), conversation: ConversationSnapshot(id: "c")).outbound.isEmpty)
    }

    @Test func durationsAndDelaysAreCollectedForTheirQueues() throws {
        let cfg = try load(rules)
        #expect(cfg.timerDelays == [1500])
        #expect(cfg.outboundDelays == [250])
        let bad = configErrors("rules:\n  - name: r\n    schedule: [{timer: t, after: soon}]")
        #expect(bad.contains { $0.location.line == 3 && $0.message.contains("duration") && $0.message.contains("soon") })
    }

    @Test func removingAnAttributeWithNull() throws {
        let r = "rules:\n  - name: forget\n    set: [{attribute: a, value: null}]"
        let d = Engine(config: try load(r)).evaluate(try event("{}"), conversation: ConversationSnapshot(id: "c", attributes: ["a": 1]))
        #expect(d.attributeChanges["a"] == .some(nil))
    }
}
