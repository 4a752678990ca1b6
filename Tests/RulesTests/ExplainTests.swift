import Foundation
import JSONPath
import Testing

@testable import Rules

/// "Why no rule matched": the engine names, rule by rule, what kept each one out, with the value it saw.
@Suite struct ExplainTests {
    let rules = """
        rules:
          - name: sap-only
            from: customer-a
            when:
              - field: $.assignment_group
                equals: SAP Support
              - field: $.priority
                equals: "1"
            send: [{to: vendor-x, body: {}}]
          - name: urgent
            from: customer-a
            when: {field: $.priority, regex: "^[12]$"}
            send: [{to: vendor-x, body: {}}]
          - name: vendor-updates
            from: vendor-x
            type: jira:issue_updated
            send: [{to: customer-a, body: {}}]
          - name: creates-only
            type: create
            send: [{to: vendor-x, body: {}}]
          - name: retry
            timer: again
            send: [{to: vendor-x, body: {}}]
        """

    @Test func eachRuleSaysWhatKeptItOut() throws {
        let config = try load(rules)
        let e = try event(#"{"number": "INC1", "assignment_group": "SAP Support", "priority": "3"}"#)
        let decision = Engine(config: config).evaluate(e, conversation: ConversationSnapshot(id: "c1"))
        #expect(decision.matchedRules.isEmpty)
        let why = Dictionary(uniqueKeysWithValues: Engine(config: config).explain(e, conversation: ConversationSnapshot(id: "c1")).map { ($0.rule, $0.reason) })
        #expect(why["sap-only"] == #"condition 2 is false: field $.priority equals "1"; the value is "3""#)
        #expect(why["urgent"] == #"condition 1 is false: field $.priority matches /^[12]$/; the value is "3""#)
        #expect(why["vendor-updates"] == "from vendor-x; this message is from customer-a")
        #expect(why["creates-only"] == "type create; this message is update")
        #expect(why["retry"] == "listens to timer 'again' only")
    }

    @Test func aMissingFieldSaysSo() throws {
        let config = try load(rules)
        let e = try event(#"{"number": "INC1"}"#)
        let why = Engine(config: config).explain(e, conversation: ConversationSnapshot(id: "c1"))
        #expect(why.first { $0.rule == "sap-only" }?.reason == "condition 1 is false: field $.assignment_group equals \"SAP Support\"; no value")
    }

    @Test func theNoRuleEntryCarriesTheExplanation() throws {
        let config = try load(rules)
        let e = try event(#"{"number": "INC1", "priority": "9"}"#)
        let decision = Engine(config: config).evaluate(e, conversation: ConversationSnapshot(id: "c1"))
        let note = try #require(decision.notes.first { $0.kind == .noRule })
        guard case .array(let items) = try JSON.parse(try #require(note.body)) else {
            Issue.record("the no-rule body is not a JSON array")
            return
        }
        #expect(items.compactMap { $0["rule"]?.stringValue } == config.rules.map(\.name))
        #expect(items.allSatisfy { !($0["reason"]?.stringValue ?? "").isEmpty })
    }

    @Test func descriptionsAreKept() throws {
        let config = try load("rules:\n  - name: a\n    description: >\n      Says why\n      in two lines.\n    send: [{to: vendor-x, body: {}}]")
        #expect(config.rules.first?.description == "Says why in two lines.")
    }
}

/// The admin section: what an operator can get wrong, named with file and line.
@Suite struct AdminConfigTests {
    func errors(_ admin: String) -> [ConfigError] {
        do {
            _ = try ConfigLoader.load(files: [("endpoints.yaml", endpointsYAML), ("admin.yaml", admin)], environment: [:])
            return []
        } catch {
            return error.errors
        }
    }

    @Test func plainHTTPOnlyOnLoopback() {
        #expect(errors("admin:\n  listen: 127.0.0.1:8080\n  plain_http: true").isEmpty)
        let e = errors("admin:\n  listen: 0.0.0.0:8080\n  plain_http: true")
        #expect(e.count == 1 && e.first?.message.contains("only on a loopback address") == true)
    }

    @Test func httpsNeedsACertificate() {
        #expect(errors("admin:\n  listen: 0.0.0.0:8443").first?.message.contains("tls_cert_file") == true)
    }

    @Test func usersAndTokensAreChecked() {
        let e = errors("""
            admin:
              listen: 127.0.0.1:8443
              plain_http: true
              users:
                - {name: alice, role: admin, password_hash: "hunter2"}
              tokens:
                - {name: ci, role: viewer, sha256: "abc"}
            """)
        #expect(e.contains { $0.location.line == 5 && $0.message.contains("unknown role 'admin' (known: viewer, operator)") })
        #expect(e.contains { $0.location.line == 5 && $0.message.contains("not a bcrypt hash") })
        #expect(e.contains { $0.location.line == 7 && $0.message.contains("not 64 hex digits") })
    }

    @Test func aGoodSection() throws {
        let c = try ConfigLoader.load(files: [("endpoints.yaml", endpointsYAML), ("admin.yaml", """
            admin:
              listen: "[::1]:9443"
              plain_http: true
              users:
                - {name: alice, role: operator, password_hash: "$2b$12$abcdefghijklmnopqrstuuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01"}
            """)], environment: [:])
        #expect(c.admin?.users.first?.role == .operator)
        #expect(AdminSettings.hostPort(c.admin?.listen ?? "")! == ("::1", 9443))
    }
}
