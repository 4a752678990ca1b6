import Foundation
import JSONPath
import Testing

@testable import Rules

/// Retry policies (`retries:`): what a refusal schedules, what goes out again and when, and giving up;
/// played through the real engine by the rule test runner.
@Suite struct RetryPolicyTests {
    static func rules(_ policy: String) -> String {
        """
        rules:
          - name: to-vendor
            from: customer-a
            set: [{attribute: last, value: {field: $.text}}]
            send: [{to: vendor-x, type: update, body: {text: {attribute: last}, key: {reference: customer-a}}}]
          - name: acked
            from: vendor-x
            type: ack
            when: {field: $.status, equals: ok}
            set: [{attribute: taken, value: yes}]
        retries:
          - name: busy
            endpoint: vendor-x
            when: {field: $.code, equals: BUSY}
        \(policy.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
        """
    }

    func run(_ policy: String, _ tests: String) throws -> [RuleTestResult] {
        let config = try load(Self.rules(policy))
        let cases = try ConfigLoader.loadTests(files: [("t_test.yaml", tests)], environment: [:])
        return RuleTestRunner(config: config).run(cases)
    }

    @Test func exponentialWaitsThenGivingUpWithTheGiveUpMessage() throws {
        let results = try run(
            """
            wait: {exponential: 10s, factor: 2, max: 40s}
            attempts: 4
            give_up:
              - {to: customer-a, type: comment, body: {said: "gave up on ${attr:last}"}}
            """,
            """
            tests:
              - name: busy five times
                answers: {vendor-x: [{status: error, code: BUSY}, {status: error, code: BUSY}, {status: error, code: BUSY}, {status: error, code: BUSY}, {status: error, code: BUSY}]}
                steps:
                  - from: customer-a
                    body: {number: T1, text: hello}
                    expect: {rules: [to-vendor, "retry:busy"], timers: ["retry:busy"], counters: {"retry:busy:update": 1}}
                  - advance: 9s
                    expect: {sent: []}
                  - advance: 1s
                    expect:
                      rules: ["retry:busy:resend", "retry:busy"]
                      sent: [{to: vendor-x, type: update, body: {text: hello, key: T1}}]
                      counters: {"retry:busy:update": 2}
                  - advance: 19s
                    expect: {sent: []}
                  - advance: 1s
                    expect: {sent: [{to: vendor-x, type: update}], counters: {"retry:busy:update": 3}}
                  - advance: 39s
                    expect: {sent: []}
                  - advance: 1s
                    expect: {sent: [{to: vendor-x, type: update}], counters: {"retry:busy:update": 4}}
                  - advance: 40s
                    expect:
                      rules: ["retry:busy:resend", "retry:busy:give-up"]
                      sent:
                        - {to: vendor-x, type: update, body: {text: hello, key: T1}}
                        - {to: customer-a, type: comment, body: {said: gave up on hello}}
                      counters: {"retry:busy:update": 0}
                      timers: []
                  - advance: 10m
                    expect: {sent: [], rules: []}
            """)
        #expect(results.map(\.failures) == [[]])
    }

    @Test func rebuildSendsTheNewestContentAndSameSendsWhatWasRefused() throws {
        let tests = """
            tests:
              - name: a newer update while the send again waits
                steps:
                  - from: customer-a
                    body: {number: T2, text: first}
                  - ack: vendor-x
                    body: {status: error, code: BUSY}
                    expect: {rules: ["retry:busy"], timers: ["retry:busy"]}
                  - from: customer-a
                    body: {number: T2, text: second}
                    expect: {sent: [{to: vendor-x, body: {text: second, key: T2}}]}
                  - advance: 30s
                    expect: {sent: [{to: vendor-x, type: update, body: {text: EXPECTED, key: T2}}]}
            """
        let rebuilt = try run("wait: 30s\nattempts: 3", tests.replacingOccurrences(of: "EXPECTED", with: "second"))
        #expect(rebuilt.map(\.failures) == [[]])
        let same = try run("wait: 30s\nattempts: 3\nresend: same", tests.replacingOccurrences(of: "EXPECTED", with: "first"))
        #expect(same.map(\.failures) == [[]])
    }

    @Test func anOkAckEndsTheRunAndTheWaitingTimerSendsNothing() throws {
        let results = try run(
            "wait: 30s\nattempts: 3",
            """
            tests:
              - name: refused, then the first send is taken after all
                steps:
                  - from: customer-a
                    body: {number: T3, text: x}
                  - ack: vendor-x
                    body: {status: error, code: BUSY}
                    expect: {counters: {"retry:busy:update": 1}}
                  - ack: vendor-x
                    body: {status: ok}
                    expect: {rules: ["retry:busy:reset", acked], counters: {"retry:busy:update": 0}, attributes: {taken: yes}}
                  - advance: 30s
                    expect: {rules: [], sent: []}
            """)
        #expect(results.map(\.failures) == [[]])
    }

    @Test func withinGivesUpWhenTheNextWaitWouldEndPastIt() throws {
        let results = try run(
            "wait: 60s\nwithin: 150s\ngive_up: [{to: customer-a, type: comment, body: {n: {counter: \"retry:busy:update\"}}}]",
            """
            tests:
              - name: always busy
                answers: {vendor-x: [{status: error, code: BUSY}, {status: error, code: BUSY}, {status: error, code: BUSY}]}
                steps:
                  - from: customer-a
                    body: {number: T4, text: x}
                    expect: {counters: {"retry:busy:update": 1, "retry:busy:update:since": 1767225600}}
                  - advance: 60s
                    expect: {sent: [{to: vendor-x}], counters: {"retry:busy:update": 2}}
                  - advance: 60s
                    expect:
                      rules: ["retry:busy:resend", "retry:busy:give-up"]
                      # The give-up message sees how often it was sent again, before the counter is reset.
                      sent: [{to: vendor-x}, {to: customer-a, type: comment, body: {n: 2}}]
                      counters: {"retry:busy:update": 0, "retry:busy:update:since": 0}
            """)
        #expect(results.map(\.failures) == [[]])
    }

    @Test func aRefusalThePolicyDoesNotHandleGoesToTheRulesAndIsMarkedFailed() throws {
        let config = try load(Self.rules("wait: 30s\nattempts: 3"))
        var e = try event(#"{"status": "error", "code": "INVALID"}"#, from: "vendor-x", type: "ack")
        e.ack = AckedMessage(messageId: "out-1", type: "update", rule: "to-vendor", target: "vendor-x")
        let d = Engine(config: config).evaluate(e, conversation: ConversationSnapshot(id: "c1"))
        #expect(d.matchedRules == [])
        #expect(d.timers == [])
        #expect(d.failedOutbound.keys.sorted() == ["out-1"])
        // A type the policy does not cover is not its either.
        let typed = try load(Self.rules("types: [comment]\nwait: 30s\nattempts: 3"))
        e.body = try JSON.parse(#"{"status": "error", "code": "BUSY"}"#)
        #expect(Engine(config: typed).evaluate(e, conversation: ConversationSnapshot(id: "c1")).matchedRules == [])
        #expect(Engine(config: config).evaluate(e, conversation: ConversationSnapshot(id: "c1")).matchedRules == ["retry:busy"])
    }

    @Test func aWaitTheAckNamesIsHonouredRoundedUpAndCapped() throws {
        let config = try load(Self.rules("wait: {from: $.retry_after, default: 30s, max: 10m}\nattempts: 3"))
        let policy = try #require(config.retries.first)
        let now = Date(timeIntervalSince1970: 1_767_225_600)  // 2026-01-01T00:00:00Z
        func wait(_ ack: String) throws -> Int {
            try policy.waitMs(attempt: 1, ack: JSON.parse(ack), seed: "c", now: now, budget: RegexBudget(limit: 1000))
        }
        #expect(try wait(#"{"retry_after": 37}"#) == 60_000)
        #expect(try wait(#"{"retry_after": "5"}"#) == 5_000)
        #expect(try wait(#"{"retry_after": "90s"}"#) == 120_000)
        #expect(try wait(#"{"retry_after": "Thu, 01 Jan 2026 00:02:00 GMT"}"#) == 120_000)
        #expect(try wait(#"{"retry_after": "2026-01-01T00:00:07Z"}"#) == 10_000)
        #expect(try wait(#"{"retry_after": 86400}"#) == 600_000)
        #expect(try wait(#"{"retry_after": "soon"}"#) == 30_000)
        #expect(try wait(#"{}"#) == 30_000)
        // Every wait it can choose has a delay queue.
        #expect(policy.possibleDelays.isSuperset(of: [5_000, 10_000, 60_000, 120_000, 600_000, 30_000]))
        #expect(config.timerDelays.isSuperset(of: policy.possibleDelays))
    }

    @Test func jitterIsOneOfFourStepsTheSameOnEveryReplay() throws {
        let config = try load(Self.rules("wait: {exponential: 10s, max: 80s, jitter: 0.4}\nattempts: 6"))
        let policy = try #require(config.retries.first)
        let budget = RegexBudget(limit: 1000)
        var seen: Set<Int> = []
        for seed in (0..<40).map({ "conversation-\($0)" }) {
            let first = policy.waitMs(attempt: 2, ack: .object([:]), seed: seed, now: nil, budget: budget)
            #expect(first == policy.waitMs(attempt: 2, ack: .object([:]), seed: seed, now: nil, budget: budget))
            #expect([20_000, 18_000, 16_000, 14_000].contains(first))
            seen.insert(first)
        }
        #expect(seen.count > 1)
        #expect(policy.possibleDelays == [10_000, 9_000, 8_000, 7_000, 20_000, 18_000, 16_000, 14_000, 40_000, 36_000, 32_000, 28_000, 80_000, 72_000, 64_000, 56_000])
    }

    @Test func policiesAreCheckedWhereTheyAreWritten() {
        let errors = configErrors(
            """
            rules:
              - name: t
                from: customer-a
                schedule: [{timer: "retry:mine", after: 1s}]
            retries:
              - name: a
                endpoint: vendor-y
                wait: 60s
              - name: b
                endpoint: vendor-x
                rules: [nope]
                wait: {exponential: 10s}
                attempts: 2
                resend: again
            """
        ).map(\.description)
        #expect(errors.contains { $0.hasPrefix("rules.yaml:4:") && $0.contains("timer names starting with 'retry:' are retry policies' own") })
        #expect(errors.contains { $0.hasPrefix("rules.yaml:7:") && $0.contains("unknown endpoint 'vendor-y' in 'endpoint'") })
        #expect(errors.contains { $0.hasPrefix("rules.yaml:6:") && $0.contains("retry policy 'a' needs 'attempts'") })
        #expect(errors.contains { $0.hasPrefix("rules.yaml:11:") && $0.contains("unknown rule 'nope' in 'rules'") })
        #expect(errors.contains { $0.hasPrefix("rules.yaml:12:") && $0.contains("an exponential wait needs 'max'") })
        #expect(errors.contains { $0.hasPrefix("rules.yaml:14:") && $0.contains("resend is 'same'") })
    }
}

/// What a policy matched is on the timeline as `rule-matched` (capture and replay read it from there).
@Suite struct RetryPolicyTimelineTests {
    @Test func everyNameThePolicyMatchesIsARuleMatchedEntry() throws {
        let config = try load(RetryPolicyTests.rules("wait: 30s\nattempts: 1"))
        let engine = Engine(config: config)
        let acked = StoredOutbound(
            messageId: "out-1", conversationId: "c1", inbound: InboundKey("customer-a", "m0"), target: "vendor-x", type: "update",
            rule: "to-vendor", body: Data(#"{"text":"x"}"#.utf8), delayMs: 0)
        func ack(_ body: String, counters: [String: Int]) throws -> MessageDecision {
            let e = InboundEvent(endpoint: "vendor-x", messageId: "a1", type: EventType.ack, body: try JSON.parse(body), ticketId: nil)
            return try engine.decide(Situation(
                endpoint: "vendor-x", messageId: "a1", route: 0, event: e,
                conversation: ConversationSnapshot(id: "c1", version: 3, counters: counters), acked: acked, now: RuleTestRunner.epoch))
        }
        for (body, counters, name) in [
            (#"{"status":"error","code":"BUSY"}"#, [String: Int](), "retry:busy"),
            (#"{"status":"error","code":"BUSY"}"#, ["retry:busy:update": 1], "retry:busy:give-up"),
            (#"{"status":"ok"}"#, ["retry:busy:update": 1], "retry:busy:reset"),
        ] {
            let d = try ack(body, counters: counters)
            #expect(d.matchedRules.first == name)
            #expect(d.timeline.filter { $0.kind == .ruleMatched }.map(\.rule) == d.matchedRules.map { Optional($0) })
        }
    }
}

/// A recorded ack answers the message it answered: replay matches it to the candidate's send of the same
/// rank (endpoint, type, nth), not to the last one sent.
@Suite struct ReplayAckMatchingTests {
    @Test func aLateRefusalOfTheFirstUpdateIsMatchedToTheFirstEvenAfterASecondWasSent() throws {
        let config = try load(RetryPolicyTests.rules("wait: 30s\nattempts: 3\nresend: same"))
        let t0 = RuleTestRunner.epoch
        var r = Recording(config, id: "c1")
        let first = try r.message(#"{"number":"T1","text":"first"}"#, id: "m1", at: t0)
        try r.message(#"{"number":"T1","text":"second"}"#, id: "m2", at: t0 + 1)
        let refused = try r.ack(#"{"status":"error","code":"BUSY"}"#, id: "a1", answering: first.outbox[0], at: t0 + 2)
        let timer = try #require(refused.outbox.first { $0.kind == .timer })
        let again = try r.fire(timer, at: t0 + 32)
        #expect(try JSON.parse(again.outbox[0].body)["text"] == "first")

        let text = try Capture.test(name: "late refusal", timeline: r.timeline, sentBodies: r.bodies, personal: [:])
        #expect(text.contains("answering: \"update\"\n        nth: 1"), "\(text)")
        let report = Replay.run([r.recorded], candidate: config)
        #expect(report.differing.isEmpty, "\(report.differing)")
        // A candidate that sends no update: the recorded answer has no send to answer, and says so.
        let silent = try load(RetryPolicyTests.rules("wait: 30s\nattempts: 3").replacingOccurrences(of: "from: customer-a\n    set", with: "from: customer-a\n    when: {field: $.never, exists: true}\n    set"))
        let none = Replay.run([r.recorded], candidate: silent)
        #expect(none.differing.first?.differences.contains { $0.contains("an answer with no send: no 1st message to 'vendor-x' of type 'update' for it to answer (0 were sent)") } == true,
                "\(none.differing)")
    }
}

/// Captured tests and replay compare what a message changed too: counters, attributes (whole values) and
/// the timers it scheduled, read back from the recorded timeline.
@Suite struct ReplayStateTests {
    @Test func anAttributeOrACounterThatWouldChangeDifferentlyIsADifference() throws {
        let config = try load(RetryPolicyTests.rules("wait: 30s\nattempts: 3"))
        let t0 = RuleTestRunner.epoch
        var r = Recording(config, id: "c2")
        let sent = try r.message(#"{"number":"T2","text":"x"}"#, id: "m1", at: t0)
        try r.ack(#"{"status":"error","code":"BUSY"}"#, id: "a1", answering: sent.outbox[0], at: t0 + 1)
        try r.ack(#"{"status":"ok"}"#, id: "a2", answering: sent.outbox[0], at: t0 + 2)
        let conversations = [r.recorded]

        let text = try Capture.test(name: "state", timeline: r.timeline, sentBodies: r.bodies, personal: [:])
        #expect(text.contains(#"counters: { "retry:busy:update": 1 }"#) && text.contains(#"timers: ["retry:busy"]"#), "\(text)")
        #expect(text.contains(#"attributes: { "last": "x" }"#) && text.contains(#"attributes: { "taken": "yes" }"#), "\(text)")
        #expect(Replay.run(conversations, candidate: config).differing.isEmpty)
        // The ok ack's attribute, not sent anywhere: still a difference.
        let taken = try load(RetryPolicyTests.rules("wait: 30s\nattempts: 3").replacingOccurrences(of: "value: yes", with: "value: sure"))
        let a = Replay.run(conversations, candidate: taken)
        #expect(a.differing.first?.differences.contains { $0.contains("attribute 'taken'") && $0.contains("sure") } == true, "\(a.differing)")
        // A policy that counts differently: a counter and a timer differ.
        let never = try load(RetryPolicyTests.rules("wait: 30s\nattempts: 3").replacingOccurrences(of: "equals: BUSY", with: "equals: LOCKED"))
        let b = Replay.run(conversations, candidate: never)
        #expect(b.differing.first?.differences.contains { $0.contains("counter 'retry:busy:update'") } == true, "\(b.differing)")
        #expect(b.differing.first?.differences.contains { $0.contains("timers scheduled") } == true, "\(b.differing)")
    }
}
