import Foundation
import JSONPath

/// `switchboard rules lint` (also run by `config check`): what a valid configuration most likely got
/// wrong, found without running it. Each finding names the file and line, says what and suggests a fix.
/// Errors are rules or timers that can never do anything; warnings are names that do not meet.
package struct LintFinding: Sendable, Equatable, CustomStringConvertible {
    package enum Severity: String, Sendable { case error, warning }

    package var location: SourceLocation
    package var severity: Severity
    package var message: String
    package var suggestion: String

    package var description: String { "\(location): \(severity.rawValue): \(message) (\(suggestion))" }
}

package enum Lint {
    package static func check(_ config: SwitchboardConfig) -> [LintFinding] {
        var findings: [LintFinding] = []
        findings += shadowed(config)
        findings += timers(config)
        findings += names(config)
        findings += backtracking(config)
        findings += rebuilt(config)
        return findings.sorted { ($0.location.file, $0.location.line, $0.message) < ($1.location.file, $1.location.line, $1.message) }
    }

    // MARK: - Rules that can never match

    /// A rule evaluated later that can never match: an earlier rule with no conditions that ends evaluation
    /// (`stop` or `drop`) matches every message the later one could.
    static func shadowed(_ config: SwitchboardConfig) -> [LintFinding] {
        var out: [LintFinding] = []
        let rules = config.rules.filter { $0.timer == nil }
        for (i, later) in rules.enumerated() {
            guard let earlier = rules[..<i].first(where: { ($0.stop || $0.drop) && $0.conditions.isEmpty && covers($0, later) }) else { continue }
            out.append(LintFinding(
                location: later.location, severity: .error,
                message: "rule '\(later.name)' can never match: rule '\(earlier.name)' (\(earlier.location)) is evaluated first, has no conditions and \(earlier.drop ? "drops" : "stops evaluation at") every message it could match",
                suggestion: "give '\(earlier.name)' a condition, or '\(later.name)' a higher priority"))
        }
        return out
    }

    /// Whether every message `later` can match, `earlier` matches too (conditions aside).
    private static func covers(_ earlier: Rule, _ later: Rule) -> Bool {
        let fromCovered = earlier.from.isEmpty || (!later.from.isEmpty && later.from.isSubset(of: earlier.from))
        // No types: every type but acks (acks match only rules that name them).
        let typesCovered = earlier.types.isEmpty
            ? !later.types.contains(EventType.ack)
            : !later.types.isEmpty && later.types.isSubset(of: earlier.types)
        return fromCovered && typesCovered
    }

    // MARK: - Timers

    static func timers(_ config: SwitchboardConfig) -> [LintFinding] {
        var out: [LintFinding] = []
        let handled = Set(config.rules.compactMap(\.timer))
        var scheduled: Set<String> = []
        for rule in config.rules {
            for timer in rule.schedules {
                scheduled.insert(timer.name)
                if !handled.contains(timer.name) {
                    out.append(LintFinding(
                        location: rule.location, severity: .error,
                        message: "rule '\(rule.name)' schedules timer '\(timer.name)', which no rule handles: it fires and does nothing",
                        suggestion: "add a rule with `timer: \(timer.name)`" + suggestion(timer.name, among: handled)))
                }
            }
        }
        for rule in config.rules {
            if let timer = rule.timer, !scheduled.contains(timer) {
                out.append(LintFinding(
                    location: rule.location, severity: .error,
                    message: "rule '\(rule.name)' handles timer '\(timer)', which no rule schedules: it never fires",
                    suggestion: "schedule it (`schedule: [{timer: \(timer), after: 60s}]`)" + suggestion(timer, among: scheduled)))
            }
        }
        return out
    }

    // MARK: - Counters, attributes and translations whose names do not meet

    static func names(_ config: SwitchboardConfig) -> [LintFinding] {
        var out: [LintFinding] = []
        var counterReads: [String: Author] = [:], counterWrites: [String: Author] = [:]
        var attributeReads: [String: Author] = [:], attributeWrites: Set<String> = []
        var translationsUsed: Set<String> = []
        for rule in config.rules {
            let who = Author(rule)
            var reads = Reads()
            for c in rule.conditions { reads.add(c) }
            for w in rule.sets {
                attributeWrites.insert(w.name)
                reads.add(w.value)
                for c in w.conditions { reads.add(c) }
            }
            for s in rule.sends { reads.add(s.body) }
            for op in rule.counters where counterWrites[op.name] == nil { counterWrites[op.name] = who }
            for name in reads.counters where counterReads[name] == nil { counterReads[name] = who }
            for name in reads.attributes where attributeReads[name] == nil { attributeReads[name] = who }
            translationsUsed.formUnion(reads.translations)
        }
        // A retry policy counts its own (`retry:<name>:<type>`), reads what its give-up sends and conditions do.
        for policy in config.retries {
            let who = Author(policy)
            var reads = Reads()
            for c in policy.conditions { reads.add(c) }
            for s in policy.giveUp {
                reads.add(s.body)
                for c in s.conditions { reads.add(c) }
            }
            for name in reads.counters where counterReads[name] == nil { counterReads[name] = who }
            for name in reads.attributes where attributeReads[name] == nil { attributeReads[name] = who }
            translationsUsed.formUnion(reads.translations)
        }
        let policyCounter = { (name: String) in config.retries.contains { name.hasPrefix("retry:\($0.name):") } }
        for (name, who) in counterReads.sorted(by: { $0.key < $1.key }) where counterWrites[name] == nil && !policyCounter(name) {
            out.append(LintFinding(
                location: who.location, severity: .warning,
                message: "\(who.what) reads counter '\(name)', which no rule changes: it is always 0",
                suggestion: "count it in a rule (`counters: [{counter: \(name), increment: 1}]`)" + suggestion(name, among: Set(counterWrites.keys))))
        }
        for (name, who) in counterWrites.sorted(by: { $0.key < $1.key }) where counterReads[name] == nil {
            out.append(LintFinding(
                location: who.location, severity: .warning,
                message: "\(who.what) changes counter '\(name)', which no rule reads",
                suggestion: "test it in a condition (`{counter: \(name), lt: 10}`) or remove it" + suggestion(name, among: Set(counterReads.keys))))
        }
        for (name, who) in attributeReads.sorted(by: { $0.key < $1.key }) where !attributeWrites.contains(name) {
            out.append(LintFinding(
                location: who.location, severity: .warning,
                message: "\(who.what) reads attribute '\(name)', which no rule sets: it is never there",
                suggestion: "set it in a rule (`set: [{attribute: \(name), value: ...}]`)" + suggestion(name, among: attributeWrites)))
        }
        for (name, table) in config.translations.sorted(by: { $0.key < $1.key }) where !translationsUsed.contains(name) {
            out.append(LintFinding(
                location: table.location, severity: .warning, message: "translation table '\(name)' is used by no rule",
                suggestion: "use it (`{field: $.x, translate: \(name)}`) or remove it"))
        }
        return out
    }

    /// Who reads or writes a name: a rule or a retry policy.
    private struct Author {
        var what: String
        var location: SourceLocation
        init(_ rule: Rule) { (what, location) = ("rule '\(rule.name)'", rule.location) }
        init(_ policy: RetryPolicy) { (what, location) = ("retry policy '\(policy.name)'", policy.location) }
    }

    /// What a rule's conditions and mappings read.
    private struct Reads {
        var counters: [String] = []
        var attributes: [String] = []
        var translations: [String] = []
        /// JSONPaths read from the message being decided.
        var fields: [String] = []

        mutating func add(_ c: Condition) {
            switch c {
            case .all(let cs), .any(let cs): for c in cs { add(c) }
            case .not(let c): add(c)
            case .test(let subject, _):
                if case .counter(let n) = subject { counters.append(n) }
                if case .attribute(let n) = subject { attributes.append(n) }
            }
        }

        mutating func add(_ m: Mapping) {
            switch m {
            case .constant: break
            case .field(let path, let t):
                fields.append(path.source)
                add(t)
            case .reference(_, let t): add(t)
            case .template(let template, let t):
                add(t)
                for part in template.parts {
                    if case .field(let path) = part { fields.append(path.source) }
                    if case .counter(let n) = part { counters.append(n) }
                    if case .attribute(let n) = part { attributes.append(n) }
                }
            case .attribute(let n, let t):
                attributes.append(n)
                add(t)
            case .counter(let n): counters.append(n)
            case .object(let members): for (_, v) in members { add(v) }
            case .array(let items): for v in items { add(v) }
            }
        }

        mutating func add(_ t: Transform) {
            if let name = t.translate { translations.append(name) }
        }
    }

    // MARK: - Retry policies

    /// A send a retry policy rebuilds when its timer fires: the message that triggered the rule is not at
    /// hand then, so a value the body reads from it would be left out of every send again.
    static func rebuilt(_ config: SwitchboardConfig) -> [LintFinding] {
        var out: [LintFinding] = []
        for policy in config.retries where policy.resend == .rebuild {
            for rule in config.rules where policy.rules.isEmpty || policy.rules.contains(rule.name) {
                for send in rule.sends where policy.covers(target: send.to, type: send.type, rule: rule.name) {
                    var reads = Reads()
                    reads.add(send.body)
                    guard let path = reads.fields.first else { continue }
                    out.append(LintFinding(
                        location: send.location, severity: .error,
                        message: "rule '\(rule.name)' sends \(send.type) to \(send.to), which retry policy '\(policy.name)' rebuilds from the conversation when it sends it again, but its body reads \(path) from the message that triggered the rule, which a send again does not have",
                        suggestion: "read it from a reference or an attribute the rule sets (`{reference: ...}`, `{attribute: ...}`), or give the policy `resend: same`"))
                }
            }
        }
        return out
    }

    // MARK: - Regular expressions

    /// A group that repeats and holds a repetition itself (`(a+)+`, `(\w*)*`, `(x|.*)+`): on a long input
    /// that almost matches, ICU tries exponentially many ways. `RegexBudget` parks such a message instead of
    /// stalling its partition; rewriting the pattern avoids the park.
    static func backtracking(_ config: SwitchboardConfig) -> [LintFinding] {
        var out: [LintFinding] = []
        for rule in config.rules {
            var patterns: [String] = []
            func collect(_ c: Condition) {
                switch c {
                case .all(let cs), .any(let cs): cs.forEach(collect)
                case .not(let c): collect(c)
                case .test(_, .regex(let box)): patterns.append(box.pattern)
                case .test: break
                }
            }
            rule.conditions.forEach(collect)
            rule.sets.forEach { $0.conditions.forEach(collect) }
            for p in patterns where nestedRepetition(p) {
                out.append(LintFinding(
                    location: rule.location, severity: .warning,
                    message: "rule '\(rule.name)': the pattern \(p.debugDescription) repeats a group that repeats itself and may backtrack badly",
                    suggestion: "repeat the inner part once (`(ab)+` instead of `(a+b?)+`), or anchor it; a message that takes too long is parked"))
            }
        }
        return out
    }

    /// A parenthesised group containing `*`, `+` or `{`, directly followed by `*`, `+` or `{`.
    static func nestedRepetition(_ pattern: String) -> Bool {
        var stack: [Bool] = []  // per open group: whether it contains a repetition
        var escaped = false, inClass = false
        let chars = Array(pattern)
        for (i, ch) in chars.enumerated() {
            if escaped { escaped = false; continue }
            switch ch {
            case "\\": escaped = true
            case "[" where !inClass: inClass = true
            case "]" where inClass: inClass = false
            case _ where inClass: continue
            case "(": stack.append(false)
            case "*", "+", "{":
                if !stack.isEmpty { stack[stack.count - 1] = true }
            case ")":
                guard let inner = stack.popLast() else { continue }
                if inner, i + 1 < chars.count, "*+{".contains(chars[i + 1]) { return true }
                if inner, !stack.isEmpty { stack[stack.count - 1] = true }
            default: continue
            }
        }
        return false
    }

    /// ", or did you mean 'x'?" for a name one or two edits from a known one.
    private static func suggestion(_ name: String, among known: Set<String>) -> String {
        let close = known.filter { $0 != name && distance($0, name) <= 2 }.sorted()
        return close.isEmpty ? "" : "; did you mean '\(close[0])'?"
    }

    private static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}
