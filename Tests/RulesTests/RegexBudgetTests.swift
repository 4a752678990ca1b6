import Foundation
import JSONPath
import Testing

@testable import Rules

/// A regular expression that backtracks without end on a hostile value gives up within its budget, and
/// the decision says so (the worker parks the message); ordinary matches are untouched.
@Suite struct RegexBudgetTests {
    /// `(x+x+)+y` backtracks exponentially on x's without a y (ICU's stack limit does not stop it).
    let hostile = #"{"number":"INC1","x":"\#(String(repeating: "x", count: 30))"}"#

    func decide(_ when: String, _ body: String, limit: Int = 100) throws -> Decision {
        var engine = Engine(config: try load(whenRule(when)))
        engine.regexLimit = limit
        return engine.evaluate(try event(body), conversation: ConversationSnapshot(id: "c1"))
    }

    @Test func aBacktrackingConditionGivesUp() throws {
        let start = Date()
        let d = try decide("- {field: $.x, regex: '(x+x+)+y'}", hostile)
        #expect(Date().timeIntervalSince(start) < 10)
        let why = try #require(d.tooSlow)
        #expect(why.contains("(x+x+)+y") && why.contains("30 characters"), "\(why)")
        #expect(d.outbound.isEmpty)
    }

    @Test func aBacktrackingJSONPathMatchGivesUp() throws {
        let d = try decide(#"- {field: "$[?search(@, '(x+x+)+y')]", exists: true}"#, hostile)
        #expect(d.tooSlow?.contains("(x+x+)+y") == true, "\(String(describing: d.tooSlow))")
    }

    /// The default budget is far above what a linear search through the largest message (1 MiB) takes.
    @Test func ordinaryMatchesAreNotBounded() throws {
        let long = #"{"number":"INC1","x":"\#(String(repeating: "ab ", count: 350_000))done"}"#
        let d = try decide(#"- {field: $.x, regex: '(ab|x)+ ?done$'}"#, long, limit: RegexBudget.defaultLimit)
        #expect(d.tooSlow == nil)
        #expect(d.outbound.count == 1)
        #expect(try decide("- {field: $.x, regex: '(x+x+)+y'}", #"{"number":"INC1","x":"xxxxy"}"#).outbound.count == 1)
    }
}
