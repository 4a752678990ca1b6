import Foundation
import JSONPath

/// `switchboard rules replay`: recorded conversations re-run against a candidate configuration, with no
/// broker and no store writes. Each conversation is played from its first recorded message (its state then
/// was empty) as `Capture.testCase` writes it: its messages and acks in their recorded order, the clock at
/// their recorded gaps, timers from the candidate firing when they come due. What the candidate would do
/// differently (rules, messages sent, their bodies) is reported per conversation and grouped by rule.
package struct ReplayReport: Sendable {
    package var replayed = 0
    package var messages = 0
    /// Conversations whose effects would differ, with the differences.
    package var differing: [(conversation: String, differences: [String])] = []
    /// Conversations that cannot be replayed, with why (never skipped silently).
    package var notReplayable: [(conversation: String, why: String)] = []
    /// Rule -> how many differing conversations name it.
    package var byRule: [String: Int] = [:]

    package init() {}

    /// Another part's findings added to these (replay reads and runs conversations a part at a time).
    package mutating func add(_ other: ReplayReport) {
        replayed += other.replayed
        messages += other.messages
        differing += other.differing
        notReplayable += other.notReplayable
        byRule.merge(other.byRule, uniquingKeysWith: +)
    }
}

package enum Replay {
    /// `since`: only what the candidate does with the messages decided since then is compared; each
    /// conversation's history before that is decided by `running` (the configuration that recorded it) to
    /// reach the state its first message in the window met.
    package static func run(
        _ conversations: [(id: String, timeline: [TimelineEntry], sentBodies: [String: Data])], candidate: SwitchboardConfig,
        since: Date? = nil, running: SwitchboardConfig? = nil
    ) -> ReplayReport {
        var report = ReplayReport()
        let runner = RuleTestRunner(config: candidate)
        let before = running.map { Engine(config: $0) }
        for c in conversations {
            let test: RuleTestCase
            do {
                test = try Capture.testCase(conversationId: c.id, timeline: c.timeline, sentBodies: c.sentBodies)
            } catch {
                report.notReplayable.append((c.id, error.description))
                continue
            }
            var warmUp: (engine: Engine, steps: Int)?
            if let since, let before {
                let first = test.steps.firstIndex { ($0.at ?? .distantFuture) >= since } ?? test.steps.count
                if first > 0 { warmUp = (before, first) }
            }
            report.replayed += 1
            report.messages += c.timeline.filter { e in Capture.openings.contains(e.kind) && (since.map { e.at >= $0 } ?? true) }.count
            let result = runner.run(test, before: warmUp)
            guard !result.passed else { continue }
            report.differing.append((c.id, result.failures))
            for r in result.rules { report.byRule[r, default: 0] += 1 }
        }
        return report
    }
}
