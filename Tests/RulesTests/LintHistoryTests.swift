import Foundation
import JSONPath
import Testing

@testable import Rules

/// `rules lint --history`: translations against the values recorded messages carried.
@Suite struct LintHistoryTests {
    let rules = """
        rules:
          - name: to-vendor
            from: customer-a
            send: [{to: vendor-x, type: update, body: {prio: {field: $.p, translate: prio}, other: {field: $.q, translate: strict}}}]
          - name: remember
            from: customer-a
            set: [{attribute: p, value: {field: $.p, translate: prio}}]
        """

    func samples(_ bodies: [String], from endpoint: String = "customer-a") throws -> [Lint.Sample] {
        try bodies.map { Lint.Sample(endpoint: endpoint, type: "update", body: try JSON.parse($0)) }
    }

    @Test func keysThatNeverOccurredAndValuesWithNoKey() throws {
        let config = try load(rules)
        let findings = Lint.history(config, samples: try samples([
            #"{"number": "T1", "p": "1", "q": "a"}"#, #"{"number": "T2", "p": "9"}"#, #"{"number": "T3", "p": "9"}"#, #"{"number": "T4", "p": 1}"#,
        ])).map(\.description)
        #expect(findings.count == 2, "\(findings)")
        // prio has "1" and "2": "2" never came; "9" came twice and got the default; a number 1 is the key "1".
        #expect(findings.contains {
            $0.hasPrefix("endpoints.yaml:") && $0.contains("translation table 'prio': key(s) '2' never occurred at $.p of rule 'to-vendor', $.p of rule 'remember' in 4 recorded message(s)")
        })
        #expect(findings.contains { $0.contains("translation table 'prio' has no key \"9\", which 2 recorded message(s) carried at $.p of rule 'to-vendor', $.p of rule 'remember': it got the table's default \"Medium\"") })
        // strict has no default: a value with no key is left out (or gets the mapping's default).
        #expect(!findings.contains { $0.contains("'strict': key(s)") })
        let none = Lint.history(config, samples: try samples([#"{"number": "T5", "q": "b"}"#])).map(\.description)
        #expect(none.contains { $0.contains("translation table 'strict' has no key \"b\", which 1 recorded message(s) carried at $.q of rule 'to-vendor': it got the mapping's default or was left out") })
    }

    @Test func messagesOfOtherEndpointsAndAcksAreNotCounted() throws {
        let config = try load(rules)
        var s = try samples([#"{"p": "7"}"#], from: "vendor-x")
        s += [Lint.Sample(endpoint: "customer-a", type: "ack", body: try JSON.parse(#"{"p": "7"}"#))]
        #expect(Lint.history(config, samples: s) == [])
    }
}
