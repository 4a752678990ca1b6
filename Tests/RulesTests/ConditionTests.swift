import Testing

@testable import Rules

@Suite struct ConditionTests {
    @Test(arguments: [
        ("- field: $.state\n  equals: \"2\"", #"{"state":"2"}"#, true),
        ("- field: $.state\n  equals: 2", #"{"state":"2"}"#, true),
        ("- field: $.state\n  equals: 2", #"{"state":2.0}"#, true),
        ("- field: $.state\n  equals: \"3\"", #"{"state":"2"}"#, false),
        ("- field: $.g\n  equals: sap support", #"{"g":"SAP Support"}"#, false),
        ("- field: $.g\n  equals: sap support\n  ignore_case: true", #"{"g":"SAP Support"}"#, true),
        ("- field: $.p\n  in: [\"1\", \"2\"]", #"{"p":"2"}"#, true),
        ("- field: $.p\n  in: [\"1\", \"2\"]", #"{"p":"3"}"#, false),
        ("- field: $.p\n  in: [high]\n  ignore_case: true", #"{"p":"HIGH"}"#, true),
        ("- field: $.d\n  regex: ^SAP-[0-9]+$", #"{"d":"SAP-42"}"#, true),
        ("- field: $.d\n  regex: ^SAP-[0-9]+$", #"{"d":"sap-42"}"#, false),
        ("- field: $.d\n  regex: ^sap\n  ignore_case: true", #"{"d":"SAP-42"}"#, true),
        ("- field: $.x\n  exists: true", #"{"x":""}"#, true),
        ("- field: $.x\n  exists: true", #"{"x":null}"#, false),
        ("- field: $.x\n  exists: false", #"{"y":1}"#, true),
        ("- field: $.n\n  lt: 3", #"{"n":"2"}"#, true),
        ("- field: $.n\n  lt: 3", #"{"n":3}"#, false),
        ("- field: $.n\n  lte: 3", #"{"n":3}"#, true),
        ("- field: $.n\n  gt: 3", #"{"n":3.5}"#, true),
        ("- field: $.n\n  gte: 3", #"{"n":2}"#, false),
        ("- field: $.n\n  gt: 3", #"{"n":"abc"}"#, false),
        ("- not: {field: $.s, equals: closed}", #"{"s":"open"}"#, true),
        ("- field: $.s\n  equals: closed\n  negate: true", #"{"s":"closed"}"#, false),
        ("- any:\n  - {field: $.a, equals: 1}\n  - {field: $.b, equals: 1}", #"{"a":0,"b":1}"#, true),
        ("- all:\n  - {field: $.a, equals: 1}\n  - {field: $.b, equals: 1}", #"{"a":0,"b":1}"#, false),
        ("- field: $.changelog.items[?@.field == 'status'].toString\n  equals: Done",
         #"{"changelog":{"items":[{"field":"assignee","toString":"x"},{"field":"status","toString":"Done"}]}}"#, true),
        ("- meta: type\n  equals: update", #"{}"#, true),
    ])
    func conditionOperator(when: String, body: String, expected: Bool) throws {
        #expect(try matches(when, body) == expected, "when \(when) on \(body)")
    }

    @Test func referenceConditionUsesTheConversation() throws {
        let when = "- reference: vendor-x\n  exists: true"
        #expect(try matches(when, "{}", refs: ["vendor-x": "VX-1"]))
        #expect(try !matches(when, "{}"))
    }

    @Test func sourceAndTypeFilters() throws {
        let rules = """
            rules:
              - name: only-vendor-created
                from: vendor-x
                type: [jira:issue_created]
                send: [{to: customer-a, body: {x: 1}}]
            """
        #expect(try run(rules, event("{}", from: "vendor-x", type: "jira:issue_created")).outbound.count == 1)
        #expect(try run(rules, event("{}", from: "vendor-x", type: "jira:issue_updated")).outbound.isEmpty)
        #expect(try run(rules, event("{}", from: "customer-a", type: "jira:issue_created")).outbound.isEmpty)
    }
}
