import Foundation
import JSONPath
import Testing

@testable import Rules

/// Rule tests (`*_test.yaml`): read with file and line, played through the real engine; a broken rule or a
/// wrong expectation fails naming the test, the step, the rule and the difference.
@Suite struct RuleTestRunnerTests {
    let rules = """
        rules:
          - name: to-vendor
            from: customer-a
            counters: [{counter: n, increment: 1}]
            set: [{attribute: last, value: {field: $.number}}]
            send: [{to: vendor-x, type: update, body: {number: {field: $.number}, prio: {field: $.p, translate: prio}}}]
          - name: refused
            from: vendor-x
            type: ack
            when: {field: $.status, equals: error}
            schedule: [{timer: again, after: 30s}]
          - name: again
            timer: again
            send: [{to: vendor-x, type: update, body: {retry: {counter: n}}}]
        """

    func run(_ tests: String, rules: String? = nil) throws -> [RuleTestResult] {
        let config = try load(rules ?? self.rules)
        let cases = try ConfigLoader.loadTests(files: [("t_test.yaml", tests)], environment: [:])
        return RuleTestRunner(config: config).run(cases)
    }

    let story = """
        tests:
          - name: refused then sent again
            steps:
              - from: customer-a
                body: {number: INC1, p: "1"}
                expect:
                  rules: [to-vendor]
                  sent: [{to: vendor-x, type: update, body: {number: INC1, prio: Highest}}]
                  attributes: {last: INC1, other: null}
                  counters: {n: 1}
              - ack: vendor-x
                body: {status: error}
                expect: {rules: [refused], sent: [], timers: [again]}
              - advance: 29s
                expect: {sent: []}
              - advance: 1s
                expect:
                  rules: [again]
                  sent: [{to: vendor-x, paths: {"$.retry": 1, "$.missing": null}}]
        """

    @Test func aStoryPassesThroughTheRealEngine() throws {
        let results = try run(story)
        #expect(results.count == 1)
        #expect(results[0].failures == [])
    }

    @Test func aChangedTranslationFailsNamingTheTestTheStepTheRuleAndTheDifference() throws {
        let broken = rules.replacingOccurrences(of: "translate: prio", with: "translate: strict")
        let results = try run(story, rules: broken)
        #expect(results[0].failures.count == 1)
        let failure = try #require(results[0].failures.first)
        #expect(failure.hasPrefix("t_test.yaml:4: test 'refused then sent again', step 1 (message from customer-a): "))
        #expect(failure.contains("sent[0] (update to vendor-x, rule 'to-vendor') body: $.prio: expected \"Highest\", missing"))
    }

    @Test func aRuleThatNoLongerMatchesSaysWhy() throws {
        let broken = rules.replacingOccurrences(of: "from: customer-a", with: "from: customer-a\n    when: {field: $.p, equals: \"2\"}")
        let results = try run(story, rules: broken)
        let failure = try #require(results[0].failures.first)
        #expect(failure.contains("rules matched: expected 'to-vendor', got none ('to-vendor': "))
        // The later steps cannot be played: nothing was sent for the vendor to answer.
        #expect(results[0].failures.contains { $0.contains("step 2 (ack from vendor-x): cannot play the step: nothing was sent to 'vendor-x'") })
    }

    @Test func expectationsThatDoNotHoldEachFail() throws {
        let results = try run("""
            tests:
              - name: wrong
                state: {counters: {n: 5}, attributes: {last: OLD}, references: {customer-a: INC7}}
                steps:
                  - from: customer-a
                    body: {number: INC7}
                    expect:
                      rules: [to-vendor, refused]
                      sent: []
                      timers: [again]
                      attributes: {last: OLD}
                      counters: {n: 5}
                      dropped: true
                      no_rule: true
                      parked: true
            """)
        let f = results[0].failures
        #expect(f.count == 8, "\(f)")
        // Why the expected rule did not match, though another did.
        #expect(f.contains { $0.hasSuffix("rules matched: expected 'to-vendor', 'refused', got 'to-vendor' ('refused': from vendor-x; this message is from customer-a)") })
        #expect(f.contains { $0.hasSuffix("expected 0 message(s) sent, got 1: update to vendor-x (rule 'to-vendor')") })
        #expect(f.contains { $0.hasSuffix("timers scheduled: expected 'again', got none") })
        #expect(f.contains { $0.hasSuffix("attribute 'last': expected \"OLD\", got \"INC7\"") })
        #expect(f.contains { $0.hasSuffix("counter 'n': expected 5, got 6") })
        #expect(f.contains { $0.hasSuffix("expected the message to be dropped, but no drop rule matched") })
        #expect(f.contains { $0.hasSuffix("expected no rule to match, but 'to-vendor' matched") })
        #expect(f.contains { $0.hasSuffix("expected the message to be parked, but it was decided") })
    }

    @Test func aMessageWithoutATicketIdIsParkedAndSaysWhere() throws {
        let results = try run("""
            tests:
              - name: no id
                steps:
                  - from: customer-a
                    body: {p: "1"}
                    expect: {parked: no ticket id}
                  - from: customer-a
                    body: {p: "1"}
            """)
        #expect(results[0].failures.count == 1)
        #expect(results[0].failures[0].hasSuffix("step 2 (message from customer-a): the message cannot be decided and would be parked: no ticket id at $.number (endpoints.customer-a.ticket_id)"))
    }

    @Test func testFilesWithMistakesAreRefusedWithFileAndLine() {
        #expect(throws: ConfigErrors.self) {
            _ = try ConfigLoader.loadTests(files: [("t_test.yaml", "tests: [{name: x, steps: [{from: a}]}]")], environment: [:])
        }
        do {
            _ = try ConfigLoader.loadTests(
                files: [("t_test.yaml", """
                    tests:
                      - name: a
                        steps:
                          - advance: 1s
                            expect: {sent: {to: x}, colour: red}
                      - name: a
                        steps: [{from: customer-a, ack: vendor-x, body: {}}]
                    """)], environment: [:])
            Issue.record("expected errors")
        } catch {
            let text = error.errors.map(\.description)
            #expect(text.contains("t_test.yaml:5: expect.sent is a list of the messages sent (write [] for none)"))
            #expect(text.contains { $0.hasPrefix("t_test.yaml:5: unknown key 'colour' in expect") })
            #expect(text.contains("t_test.yaml:7: a step is one of: from (a message), ack (an answer), advance (time passing)"))
            #expect(text.contains("t_test.yaml:6: a second test named 'a' (the first is at t_test.yaml:2)"))
        }
    }

    @Test func junitNamesEachTestAndItsFailure() throws {
        let broken = rules.replacingOccurrences(of: "translate: prio", with: "translate: strict")
        let xml = RuleTestRunner.junit(try run(story, rules: broken) + (try run(story)), suite: "s")
        #expect(xml.contains(#"<testsuite name="s" tests="2" failures="1" errors="0""#))
        #expect(xml.contains(#"<testcase classname="t_test.yaml" name="refused then sent again""#))
        #expect(xml.contains("&quot;Highest&quot;"))
        #expect(xml.components(separatedBy: "<failure ").count == 2)
    }
}

/// `rules try`: the decision trace of one message, changing nothing.
@Suite struct RuleTryTests {
    let rules = """
        rules:
          - name: ignore-drafts
            priority: 10
            from: customer-a
            when: {field: $.draft, equals: true}
            drop: true
          - name: to-vendor
            from: customer-a
            when: {reference: vendor-x, exists: true}
            counters: [{counter: n, increment: 1}]
            set: [{attribute: last, value: {field: $.number}}]
            send: [{to: vendor-x, type: update, body: {key: {reference: vendor-x}, prio: {field: $.p, translate: prio}}}]
            schedule: [{timer: check, after: 2m}]
          - name: check
            timer: check
            send: [{to: customer-a, type: comment, body: {}}]
        """
    let now = Date(timeIntervalSince1970: 1_767_225_600)

    @Test func aStoredConversationsStateDecidesAndTheTraceSaysWhatWouldHappen() throws {
        let engine = Engine(config: try load(rules))
        let stored = ConversationSnapshot(id: "c1", version: 3, references: ["customer-a": "INC1", "vendor-x": "VX-1"], counters: ["n": 2])
        let lines = engine.trace(endpoint: "customer-a", type: nil, body: try JSON.parse(#"{"number":"INC1","p":"1","sys_updated_by":"ann"}"#), conversation: stored, now: now)
        #expect(lines == [
            "message: update of customer-a/INC1 by ann",
            "conversation c1 (version 3): customer-a/INC1, vendor-x/VX-1",
            "  counter n = 2",
            "rules, in the order they are evaluated:",
            "  no       ignore-drafts: condition 1 is false: field $.draft equals true; no value",
            "  matched  to-vendor",
            "would send:",
            #"  update to vendor-x (rule 'to-vendor'): {"key":"VX-1","prio":"Highest"}"#,
            "would schedule timer 'check' in 2m (rule 'to-vendor')",
            #"would set attribute last: (none) -> "INC1""#,
            "would set counter n: 2 -> 3",
            "(nothing was sent or stored)",
        ])
    }

    @Test func aNewConversationAndADroppedMessage() throws {
        let engine = Engine(config: try load(rules))
        let fresh = engine.trace(endpoint: "customer-a", type: nil, body: try JSON.parse(#"{"number":"INC2"}"#), conversation: ConversationSnapshot(id: "(new)"), now: now)
        #expect(fresh.contains("conversation: new"))
        #expect(fresh.contains { $0.hasPrefix("  no       to-vendor: condition 1 is false") })
        #expect(fresh.contains("would send: nothing"))
        let dropped = engine.trace(endpoint: "customer-a", type: nil, body: try JSON.parse(#"{"number":"INC2","draft":true}"#), conversation: ConversationSnapshot(id: "(new)"), now: now)
        #expect(dropped.contains("  matched  ignore-drafts (drop)"))
        #expect(dropped.contains("dropped: nothing is sent"))
        let noId = engine.trace(endpoint: "customer-a", type: nil, body: try JSON.parse(#"{"p":"1"}"#), conversation: ConversationSnapshot(id: "(new)"), now: now)
        #expect(noId == ["would be parked: no ticket id at $.number (endpoints.customer-a.ticket_id)"])
        #expect(engine.guessEndpoint(of: try JSON.parse(#"{"number":"INC2"}"#)) == "customer-a")
        #expect(engine.guessEndpoint(of: try JSON.parse(#"{"other":1}"#)) == nil)
    }
}

/// `rules lint`: each finding with its rule's file and line, what is wrong and a suggestion.
@Suite struct LintTests {
    func lint(_ rules: String) throws -> [String] {
        Lint.check(try load(rules)).map(\.description)
    }

    @Test func theExampleConfigurationIsClean() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Config")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".yaml") && !$0.hasSuffix("_test.yaml") }
        let files = try names.map { ("Config/" + $0, try String(contentsOf: dir.appendingPathComponent($0), encoding: .utf8)) }
        #expect(Lint.check(try ConfigLoader.load(files: files, environment: [:])) == [])
    }

    @Test func aRuleBehindAnUnconditionalStopNeverMatches() throws {
        let findings = try lint("""
            rules:
              - {name: everything-from-a, priority: 5, from: customer-a, stop: true, counters: [{counter: n, increment: 1}]}
              - {name: updates, from: customer-a, type: update, send: [{to: vendor-x, body: {}}]}
              - {name: acks-still-match, from: customer-a, type: ack, send: [{to: vendor-x, body: {}}]}
              - {name: other-endpoint, from: vendor-x, send: [{to: customer-a, body: {}}]}
            """)
        #expect(findings.filter { $0.contains("error") } == [
            "rules.yaml:3: error: rule 'updates' can never match: rule 'everything-from-a' (rules.yaml:2) is evaluated first, has no conditions and stops evaluation at every message it could match (give 'everything-from-a' a condition, or 'updates' a higher priority)"
        ])
    }

    @Test func timersAndCountersWhoseNamesDoNotMeet() throws {
        let findings = try lint("""
            rules:
              - name: start
                from: customer-a
                counters: [{counter: retries, increment: 1}]
                schedule: [{timer: retry-later, after: 1m}]
                set: [{attribute: seen, value: yes}]
              - name: later
                timer: retry-latr
                when: {counter: retrys, lt: 3}
                send: [{to: vendor-x, body: {note: {attribute: note}}}]
            """)
        #expect(findings.contains("rules.yaml:2: error: rule 'start' schedules timer 'retry-later', which no rule handles: it fires and does nothing (add a rule with `timer: retry-later`; did you mean 'retry-latr'?)"))
        #expect(findings.contains("rules.yaml:7: error: rule 'later' handles timer 'retry-latr', which no rule schedules: it never fires (schedule it (`schedule: [{timer: retry-latr, after: 60s}]`); did you mean 'retry-later'?)"))
        #expect(findings.contains("rules.yaml:7: warning: rule 'later' reads counter 'retrys', which no rule changes: it is always 0 (count it in a rule (`counters: [{counter: retrys, increment: 1}]`); did you mean 'retries'?)"))
        #expect(findings.contains { $0.hasPrefix("rules.yaml:2: warning: rule 'start' changes counter 'retries', which no rule reads") })
        #expect(findings.contains { $0.hasPrefix("rules.yaml:7: warning: rule 'later' reads attribute 'note', which no rule sets") })
        // The test file's translation tables, which no rule here uses.
        #expect(findings.contains { $0.contains("translation table 'prio' is used by no rule") })
        #expect(findings.count == 7, "\(findings)")
    }

    @Test func patternsThatRepeatARepeatingGroup() throws {
        #expect(Lint.nestedRepetition("(a+)+$"))
        #expect(Lint.nestedRepetition(#"^(\w*)*x"#))
        #expect(Lint.nestedRepetition("(x|.*){2,}"))
        #expect(Lint.nestedRepetition("((ab)+c)+"))
        #expect(!Lint.nestedRepetition("(ab)+"))
        #expect(!Lint.nestedRepetition(#"^INC\d+$"#))
        #expect(!Lint.nestedRepetition(#"(\d+)?-x"#))
        #expect(!Lint.nestedRepetition(#"\(a+\)+"#))
        #expect(!Lint.nestedRepetition("[(a+)]+"))
        let findings = try lint("rules:\n  - {name: slow, from: customer-a, when: {field: $.x, regex: \"(a+)+$\"}, send: [{to: vendor-x, body: {}}]}")
        #expect(findings.contains { $0.hasPrefix(#"rules.yaml:2: warning: rule 'slow': the pattern "(a+)+$" repeats a group that repeats itself"#) })
    }
}

/// Scripted answers and timers pending in a test's start state.
@Suite struct RuleTestScriptTests {
    let rules = """
        rules:
          - name: to-vendor
            from: customer-a
            send: [{to: vendor-x, type: update, body: {n: {field: $.number}}}]
          - name: refused
            from: vendor-x
            type: ack
            when: {field: $.status, equals: error}
            counters: [{counter: refusals, increment: 1}]
            schedule: [{timer: again, after: 30s}]
          - name: again
            timer: again
            send: [{to: vendor-x, type: update, body: {again: true}}]
          - name: nudge
            timer: nudge
            send: [{to: customer-a, type: comment, body: {nudged: true}}]
        """

    @Test func eachMessageSentIsAnsweredByTheNextScriptedAckWithinItsStep() throws {
        let cases = try ConfigLoader.loadTests(files: [("t_test.yaml", """
            tests:
              - name: two refusals then ok
                answers:
                  vendor-x: [{status: error}, {status: error}, {status: ok}]
                steps:
                  - from: customer-a
                    body: {number: INC1}
                    expect: {rules: [to-vendor, refused], counters: {refusals: 1}, timers: [again]}
                  - advance: 30s
                    expect: {rules: [again, refused], counters: {refusals: 2}, sent: [{to: vendor-x, body: {again: true}}]}
                  - advance: 30s
                    expect: {rules: [again], counters: {refusals: 2}, timers: []}
                  - advance: 1h
                    expect: {rules: [], sent: []}
            """)], environment: [:])
        let results = RuleTestRunner(config: try load(rules)).run(cases)
        #expect(results[0].failures == [])
    }

    @Test func aTimerPendingInTheStartStateFiresWhenItComesDue() throws {
        let cases = try ConfigLoader.loadTests(files: [("t_test.yaml", """
            tests:
              - name: pending nudge
                state: {references: {customer-a: INC2}, timers: {nudge: 5m}}
                steps:
                  - advance: 4m
                    expect: {sent: []}
                  - advance: 1m
                    expect: {rules: [nudge], sent: [{to: customer-a, type: comment, body: {nudged: true}}]}
            """)], environment: [:])
        let results = RuleTestRunner(config: try load(rules)).run(cases)
        #expect(results[0].failures == [])
        // And it fails when the timer is not due yet.
        let early = try ConfigLoader.loadTests(files: [("t_test.yaml", """
            tests:
              - name: too early
                state: {timers: {nudge: 5m}}
                steps:
                  - advance: 1m
                    expect: {rules: [nudge]}
            """)], environment: [:])
        #expect(RuleTestRunner(config: try load(rules)).run(early)[0].failures == [
            "t_test.yaml:5: test 'too early', step 1 (advance 1m): rules matched: expected 'nudge', got none"
        ])
    }
}

/// `rules capture`: a test written from a conversation's timeline passes against the configuration that
/// decided it, fails naming the rule once a translation it used changes, and redacts personal fields.
@Suite struct CaptureTests {
    let rules = """
        rules:
          - name: to-vendor
            from: customer-a
            send: [{to: vendor-x, type: update, body: {n: {field: $.number}, prio: {field: $.p, translate: prio}, note: "${sys_updated_by} says hi"}}]
          - name: refused
            from: vendor-x
            type: ack
            when: {field: $.status, equals: error}
            schedule: [{timer: again, after: 30s}]
          - name: again
            timer: again
            send: [{to: vendor-x, type: update, body: {again: {field: $.timer}}}]
        """
    let t0 = Date(timeIntervalSince1970: 1_800_000_000)
    let cid = "0123456789abcdef0123456789abcdef"

    /// A conversation as a worker would have decided it: an update, an error ack 2 s later, the timer 30.4 s after that.
    func recorded(_ config: SwitchboardConfig) throws -> (timeline: [TimelineEntry], bodies: [String: Data]) {
        var r = Recording(config, id: cid)
        let first = try r.message(#"{"number":"INC1","p":"1","sys_updated_by":"alice"}"#, id: "m1", at: t0)
        let second = try r.ack(#"{"status":"error"}"#, id: "a1", answering: first.outbox[0], at: t0 + 2)
        let timer = try #require(second.outbox.first { $0.kind == .timer })
        #expect(timer.type == "again")
        try r.fire(timer, at: t0 + 32.4)
        return (r.timeline, r.bodies)
    }

    @Test func aCapturedConversationPassesAndFailsOnceATranslationItUsedChanges() throws {
        let config = try load(rules)
        let (timeline, bodies) = try recorded(config)
        let personal = ["customer-a": [try JSONPath("$.sys_updated_by")]]
        let text = try Capture.test(name: "captured", timeline: timeline, sentBodies: bodies, personal: personal)
        #expect(!text.contains("alice"))
        #expect(text.contains(#""note":"(redacted) says hi""#))
        #expect(text.contains("- advance: 2000ms"))
        // The firing goes a little past its recorded time (the broker's clock may run ahead of ours).
        #expect(text.contains("- advance: \(30400 + Capture.firingSlackMs)ms"))
        let cases = try ConfigLoader.loadTests(files: [("captured_test.yaml", text)], environment: [:])
        #expect(RuleTestRunner(config: config).run(cases)[0].failures == [], "\(text)")
        let changed = try load(rules.replacingOccurrences(of: "translate: prio", with: "translate: strict"))
        let failures = RuleTestRunner(config: changed).run(cases)[0].failures
        #expect(failures.count == 1, "\(failures)")
        #expect(failures.first?.contains("sent[0] (update to vendor-x, rule 'to-vendor') body: $.prio: expected \"Highest\", missing") == true)
    }

    @Test func replayWithTheSameConfigurationFindsNoDifferenceAndWithAChangedTranslationExactlyTheConversationThatUsedIt() throws {
        let config = try load(rules)
        let (timeline, bodies) = try recorded(config)
        // A second conversation whose message has no priority: the translation's default, untouched by the change below.
        let other = try Engine(config: config).decide(Situation(
            endpoint: "customer-a", messageId: "m9", route: 0, event: try event(#"{"number":"INC9","sys_updated_by":"bo"}"#),
            conversation: ConversationSnapshot(id: "fedcba9876543210fedcba9876543210"), now: t0))
        let otherBodies = Dictionary(uniqueKeysWithValues: other.outbox.map { ($0.messageId, $0.body) })
        let pruned = Array(timeline.drop { $0.kind != .ackError })
        let recordedSet = [(id: cid, timeline: timeline, sentBodies: bodies), (id: "fedcba9876543210fedcba9876543210", timeline: other.timeline, sentBodies: otherBodies),
                           (id: "pruned", timeline: pruned, sentBodies: bodies)]
        let same = Replay.run(recordedSet, candidate: config)
        #expect(same.replayed == 2 && same.differing.isEmpty && same.messages == 4, "\(same.differing)")
        #expect(same.notReplayable.map(\.conversation) == ["pruned"])
        let candidate = try ConfigLoader.load(
            files: [("endpoints.yaml", endpointsYAML.replacingOccurrences(of: "\"1\": Highest", with: "\"1\": Top")), ("rules.yaml", rules)], environment: [:])
        let changed = Replay.run(recordedSet, candidate: candidate)
        #expect(changed.differing.map(\.conversation) == [cid])
        #expect(changed.byRule == ["to-vendor": 1])
        #expect(changed.differing.first?.differences.first?.contains(#"body: $.prio: expected "Highest", got "Top""#) == true)
    }

    @Test func replaySinceComparesOnlyTheWindowFromTheStateTheRunningConfigurationReached() throws {
        let config = try load(rules)
        let (timeline, bodies) = try recorded(config)
        let conversations = [(id: cid, timeline: timeline, sentBodies: bodies)]
        // The translation changed is used only by the message before the window (m1 at t0).
        let candidate = try ConfigLoader.load(
            files: [("endpoints.yaml", endpointsYAML.replacingOccurrences(of: "\"1\": Highest", with: "\"1\": Top")), ("rules.yaml", rules)], environment: [:])
        #expect(Replay.run(conversations, candidate: candidate).differing.count == 1)
        let window = Replay.run(conversations, candidate: candidate, since: t0 + 1, running: config)
        #expect(window.differing.isEmpty && window.replayed == 1 && window.messages == 2, "\(window.differing)")
        // A change to what the timer rule sends is in the window: the state before it came from the running configuration.
        let timerChanged = try load(rules.replacingOccurrences(of: "body: {again: {field: $.timer}}", with: "body: {again: later}"))
        let differs = Replay.run(conversations, candidate: timerChanged, since: t0 + 1, running: config)
        #expect(differs.differing.count == 1 && differs.byRule == ["again": 1], "\(differs.differing)")
    }

    @Test func aConversationWhoseBeginningIsGoneIsNotReplayable() throws {
        let (timeline, bodies) = try recorded(try load(rules))
        let later = Array(timeline.drop { $0.kind != .ackError })
        #expect(throws: Capture.NotReplayable.self) { try Capture.test(name: "x", timeline: later, sentBodies: bodies, personal: [:]) }
        var noBody = timeline
        noBody[0].body = nil
        do {
            _ = try Capture.test(name: "x", timeline: noBody, sentBodies: bodies, personal: [:])
            Issue.record("expected a refusal")
        } catch {
            #expect(error.description.hasPrefix("the body of message 'm1'"))
        }
    }
}
