import Foundation
import JSONPath

/// A rule test: `tests:` in a `*_test.yaml` file beside the configuration (docs/configuration.md, "Testing
/// your rules"). A case starts a conversation in a given state at a frozen clock, then plays steps: a
/// message from an endpoint, an answer (ack) from the endpoint a message went to, or time passing (which
/// fires the timers that come due). After each step it checks what the step should have done. Test files
/// are not configuration: `Setup.loadConfig` leaves them out of the configuration and of its hash.
package struct RuleTestCase: Sendable {
    package var name: String
    package var location: SourceLocation
    /// The conversation before the first step (references, attributes, counters).
    package var start: ConversationSnapshot
    /// Timers pending before the first step: (name, milliseconds until it comes due).
    package var pendingTimers: [(name: String, afterMs: Int)] = []
    /// Scripted answers: every message sent to an endpoint named here is answered at once (within the step
    /// that sent it) by the next ack body of its list, until the list is used up.
    package var answers: [String: [JSON]] = [:]
    package var steps: [RuleTestStep]
}

package struct RuleTestStep: Sendable {
    package enum Action: Sendable {
        /// A message from `endpoint` (its AMQP `type`, when the ESB sets one).
        case message(endpoint: String, type: String?, body: JSON)
        /// `endpoint` answers the last message sent to it (of type `answering`, when given), or with `nth` the
        /// nth message of that type sent to it in this test (what a recorded ack answered).
        case ack(endpoint: String, answering: String?, body: JSON, nth: Int? = nil)
        /// The clock moves on; timers that come due fire, in the order they come due.
        case advance(ms: Int)
    }

    package var action: Action
    package var location: SourceLocation
    package var expect: RuleTestExpectation
    /// For a step made from a recorded conversation (`Capture.testCase`): when it ended, as recorded.
    package var at: Date? = nil

    /// The step as a person names it in a failure.
    static func ordinal(_ n: Int) -> String {
        let suffix = (n % 100 >= 11 && n % 100 <= 13) ? "th" : ["th", "st", "nd", "rd", "th", "th", "th", "th", "th", "th"][n % 10]
        return "\(n)\(suffix)"
    }

    package var title: String {
        switch action {
        case .message(let endpoint, let type, _): return "message from \(endpoint)" + (type.map { " (type \($0))" } ?? "")
        case .ack(let endpoint, let answering, _, let nth):
            return "ack from \(endpoint)" + (answering.map { " answering its \(nth.map { "\(Self.ordinal($0)) " } ?? "")\($0)" } ?? "")
        case .advance(let ms): return "advance \(Engine.format(ms: ms))"
        }
    }
}

/// What a step should have done; what is not named is not checked.
package struct RuleTestExpectation: Sendable {
    /// The rules that matched, in order.
    package var rules: [String]?
    /// Every message the step sent, in order (delayed ones with their delay).
    package var sent: [ExpectedSend]?
    /// The timers the step scheduled, by name.
    package var timers: [String]?
    /// Attributes after the step; `null`: not set.
    package var attributes: [String: JSON] = [:]
    /// Counters after the step (a counter never written reads 0).
    package var counters: [String: Int] = [:]
    /// A `drop` rule matched.
    package var dropped: Bool?
    /// No rule matched.
    package var noRule: Bool?
    /// The message cannot be decided and would be parked; a text: the reason contains it.
    package var parked: String?

    package init() {}
}

package struct ExpectedSend: Sendable {
    package var location: SourceLocation
    package var to: String
    package var type: String?
    /// The whole body, equal.
    package var body: JSON?
    /// Members the body has (objects: these members, recursively; anything else: equal).
    package var contains: JSON?
    /// JSONPath -> the value its first match has (`null`: no match).
    package var paths: [(text: String, path: JSONPath, value: JSON)] = []
    package var delayMs: Int?
}

/// The outcome of one case.
package struct RuleTestResult: Sendable {
    package var name: String
    package var location: SourceLocation
    package var failures: [String]
    /// The rules behind the failures (those matched or expected apart, those whose messages or timers differ).
    package var rules: Set<String> = []
    package var seconds: Double
    package var passed: Bool { failures.isEmpty }
}
