import Foundation
import JSONPath

/// `rules lint --history`: translations checked against what the endpoints really sent. For each rule
/// mapping that translates a field of the message (`{field: ..., translate: T}`), the values recorded
/// messages of the rule's endpoints carried there: keys of T that never occurred, and values that occurred
/// with no key (they got T's or the mapping's default, or were left out).
extension Lint {
    /// One recorded inbound message: its endpoint, type and body.
    package struct Sample: Sendable {
        package var endpoint: String
        package var type: String
        package var body: JSON

        package init(endpoint: String, type: String, body: JSON) {
            self.endpoint = endpoint
            self.type = type
            self.body = body
        }
    }

    package static func history(_ config: SwitchboardConfig, samples: [Sample]) -> [LintFinding] {
        // Table -> where it reads from: (rule, path), and the values seen there with how often.
        struct Use { var rule: Rule; var path: JSONPath }
        var uses: [String: [Use]] = [:]
        for rule in config.rules where rule.timer == nil {
            var found: [(JSONPath, String)] = []
            func walk(_ m: Mapping) {
                switch m {
                case .field(let path, let t): if let name = t.translate { found.append((path, name)) }
                case .object(let members): members.forEach { walk($0.1) }
                case .array(let items): items.forEach(walk)
                default: break
                }
            }
            rule.sends.forEach { walk($0.body) }
            rule.sets.forEach { walk($0.value) }
            for (path, name) in found { uses[name, default: []].append(Use(rule: rule, path: path)) }
        }
        var out: [LintFinding] = []
        let budget = RegexBudget(limit: RegexBudget.defaultLimit)
        for (name, list) in uses.sorted(by: { $0.key < $1.key }) {
            guard let table = config.translations[name] else { continue }
            var seen: [String: Int] = [:]
            var looked = 0
            for s in samples where s.type != EventType.ack {
                let reading = list.filter { ($0.rule.from.isEmpty || $0.rule.from.contains(s.endpoint)) && ($0.rule.types.isEmpty || $0.rule.types.contains(s.type)) }
                guard !reading.isEmpty else { continue }
                looked += 1
                // Each message counts once per value, however many rules read the table there.
                let values = Set(reading.compactMap { use in use.path.first(s.body, budget: budget).flatMap { $0 == .null ? nil : $0.scalarText } })
                for v in values { seen[v, default: 0] += 1 }
            }
            guard looked > 0 else { continue }
            let place = list.map { "\($0.path.source) of rule '\($0.rule.name)'" }.joined(separator: ", ")
            let matches = { (key: String) in seen.keys.contains { $0 == key || (table.ignoreCase && $0.lowercased() == key.lowercased()) } }
            let unused = table.values.keys.filter { !matches($0) }.sorted()
            if !unused.isEmpty {
                out.append(LintFinding(
                    location: table.location, severity: .warning,
                    message: "translation table '\(name)': key(s) \(unused.map { "'\($0)'" }.joined(separator: ", ")) never occurred at \(place) in \(looked) recorded message(s)",
                    suggestion: "check the keys against what the endpoint sends, or remove them"))
            }
            let unmapped = seen.filter { table.values[$0.key] == nil && !(table.ignoreCase && table.lowercased[$0.key.lowercased()] != nil) }
            for (value, n) in unmapped.sorted(by: { ($0.value, $1.key) > ($1.value, $0.key) }).prefix(10) {
                let fallback = table.defaultValue.map { "got the table's default \($0.serializedString)" } ?? "got the mapping's default or was left out"
                out.append(LintFinding(
                    location: table.location, severity: .warning,
                    message: "translation table '\(name)' has no key \(value.debugDescription), which \(n) recorded message(s) carried at \(place): it \(fallback)",
                    suggestion: "add `\(value.debugDescription): ...` to its values"))
            }
        }
        return out
    }
}
