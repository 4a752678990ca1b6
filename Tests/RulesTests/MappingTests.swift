import JSONPath
import Testing

@testable import Rules

@Suite struct MappingTests {
    func body(_ mapping: String, _ input: String, refs: [String: String] = [:]) throws -> JSON {
        let rules = """
            rules:
              - name: m
                send:
                  - to: vendor-x
                    type: create
                    body:
            \(mapping.split(separator: "\n").map { "              " + $0 }.joined(separator: "\n"))
            """
        let d = try run(rules, event(input), conversation: ConversationSnapshot(id: "c9", references: refs))
        return try #require(d.outbound.first).body
    }

    @Test func constantOfEveryKind() throws {
        let b = try body("s: text\nn: 42\nf: 1.5\nt: true\nz: null\nq: \"007\"\nv: {value: {field: literal}}", "{}")
        #expect(b == ["s": "text", "n": 42, "f": 1.5, "t": true, "z": nil, "q": "007", "v": ["field": "literal"]])
    }

    @Test func fieldCopiesAnyJSONAndLeavesMissingOut() throws {
        let b = try body("a: {field: $.x.y}\nb: {field: $.missing}\nc: {field: $.missing, default: none}\nd: {field: \"$.list[1]\"}",
                         #"{"x":{"y":{"deep":[1,2]}},"list":["p","q"]}"#)
        #expect(b == ["a": ["deep": [1, 2]], "c": "none", "d": "q"])
    }

    @Test func templates() throws {
        let b = try body(
            "t: \"Ticket ${number}: ${short_description}\"\nu: \"${$.a[0]}-${meta:endpoint}-${ref:vendor-x}-${meta:conversation}\"\nlit: \"cost $${x}\"",
            #"{"number":"INC1","short_description":"SAP down","a":[7]}"#, refs: ["vendor-x": "VX-9"])
        #expect(b["t"] == "Ticket INC1: SAP down")
        #expect(b["u"] == "7-customer-a-VX-9-c9")
        #expect(b["lit"] == "cost ${x}")
    }

    @Test func translationWithTableDefaultAndMappingDefault() throws {
        let b = try body(
            "p1: {field: $.p1, translate: prio}\np2: {field: $.p2, translate: prio}\ns1: {field: $.s, translate: strict}\ns2: {field: $.s, translate: strict, default: fallback}\ns3: {field: $.a, translate: strict}",
            #"{"p1":"1","p2":"9","s":"zzz","a":"a"}"#)
        #expect(b == ["p1": "Highest", "p2": "Medium", "s2": "fallback", "s3": "A"])
    }

    @Test func missingTranslationIsNotedOnTheTimeline() throws {
        let rules = "rules:\n  - name: m\n    send:\n      - to: vendor-x\n        body: {s: {field: $.s, translate: strict}}"
        let d = try run(rules, event(#"{"s":"zzz"}"#))
        #expect(d.notes.contains { $0.kind == .warning && $0.detail.contains("strict") && $0.detail.contains("zzz") })
    }

    @Test func referenceAndNestedArrays() throws {
        let b = try body("key: {reference: vendor-x}\nlist:\n  - {field: $.a}\n  - {field: $.nope}\n  - [1, {field: $.a}]", #"{"a":"x"}"#,
                         refs: ["vendor-x": "VX-3"])
        #expect(b == ["key": "VX-3", "list": ["x", [1, "x"]]])
    }

    @Test func environmentSubstitution() throws {
        let rules = "rules:\n  - name: m\n    send:\n      - to: vendor-x\n        body:\n          a: \"${COMPANY:-Acme}\"\n          b: \"${REGION}\"\n          n: ${MAX:-10}"
        let cfg = try load(rules, env: ["REGION": "eu"])
        let d = Engine(config: cfg).evaluate(try event("{}"), conversation: ConversationSnapshot(id: "c"))
        #expect(d.outbound.first?.body == ["a": "Acme", "b": "eu", "n": 10])
    }
}

@Suite struct RuleFlowTests {
    @Test func fanOutToSeveralTargets() throws {
        let rules = """
            rules:
              - name: both
                send:
                  - {to: vendor-x, type: create, body: {a: 1}}
                  - {to: customer-a, type: comment, body: {b: 2}}
            """
        let d = try run(rules, event("{}"))
        #expect(d.outbound.map(\.target) == ["vendor-x", "customer-a"])
        #expect(d.outbound.map(\.type) == ["create", "comment"])
    }

    @Test func priorityOrderThenWrittenOrder() throws {
        let rules = """
            rules:
              - {name: low, priority: 1, send: [{to: vendor-x, body: {r: low}}]}
              - {name: first-zero, send: [{to: vendor-x, body: {r: z1}}]}
              - {name: high, priority: 10, send: [{to: vendor-x, body: {r: high}}]}
              - {name: second-zero, send: [{to: vendor-x, body: {r: z2}}]}
            """
        let d = try run(rules, event("{}"))
        #expect(d.matchedRules == ["high", "low", "first-zero", "second-zero"])
    }

    @Test func stopEndsEvaluation() throws {
        let rules = """
            rules:
              - {name: a, priority: 2, stop: true, send: [{to: vendor-x, body: {r: a}}]}
              - {name: b, priority: 1, send: [{to: vendor-x, body: {r: b}}]}
            """
        #expect(try run(rules, event("{}")).matchedRules == ["a"])
    }

    @Test func dropRuleSendsNothingAndStops() throws {
        let rules = """
            rules:
              - name: quiet
                priority: 5
                when: {field: $.noise, equals: true}
                drop: true
              - {name: forward, send: [{to: vendor-x, body: {r: 1}}]}
            """
        let dropped = try run(rules, event(#"{"noise":true}"#))
        #expect(dropped.dropped)
        #expect(dropped.outbound.isEmpty)
        #expect(dropped.notes.first?.kind == .dropped)
        #expect(try run(rules, event(#"{"noise":false}"#)).outbound.count == 1)
    }

    @Test func noRuleMatchedIsNoted() throws {
        let rules = "rules:\n  - {name: never, when: {field: $.x, exists: true}, send: [{to: vendor-x, body: {}}]}"
        let d = try run(rules, event("{}"))
        #expect(d.outbound.isEmpty)
        #expect(d.notes.map(\.kind.rawValue) == ["no-rule"])
    }
}
