import Foundation
import JSONPath
import Yams

// What a rule maps (fields, values, templates, references, attributes, counters, translations) and the
// conditions it tests.
extension ConfigLoader {
    // MARK: - Mappings

    static let mappingKeys: Set<String> = ["field", "value", "template", "reference", "attribute", "counter", "translate", "default"]

    mutating func mappingValue(_ y: Y, context: inout MappingContext) -> Mapping {
        switch y.node {
        case .scalar:
            // Environment references are resolved first; what still holds `${` is a template.
            guard let text = substitute(y) else { return .constant(.null) }
            if text.contains("${") {
                if let t = template(y) { return .template(t, Transform()) }
                return .constant(.null)
            }
            return .constant(json(y) ?? .null)
        case .sequence:
            return .array((sequence(y, "a list") ?? []).map { mappingValue($0, context: &context) })
        case .mapping:
            let m = mapping(y, "a mapping") ?? []
            let keys = Set(m.map(\.0.string))
            let sources = keys.intersection(["field", "value", "template", "reference", "attribute", "counter"])
            if !keys.isEmpty, keys.isSubset(of: Self.mappingKeys), !sources.isEmpty {
                return specialMapping(y, m, sources: sources, context: &context)
            }
            return .object(m.map { ($0.0.string, mappingValue($0.1, context: &context)) })
        case .alias:
            error(y, "YAML aliases are not supported here")
            return .constant(.null)
        }
    }

    mutating func specialMapping(
        _ y: Y, _ m: [(Y, Y)], sources: Set<String>, context: inout MappingContext
    ) -> Mapping {
        if sources.count > 1 {
            error(y, "a value takes one of field, value, template, reference, attribute, counter; this one has \(sources.sorted().joined(separator: " and "))")
        }
        var transform = Transform()
        for (k, v) in m {
            if k.string == "translate", let name = string(v) {
                if context.translations[name] == nil {
                    error(v, "unknown translation table '\(name)' (known: \(context.translations.keys.sorted().joined(separator: ", ")))")
                }
                transform.translate = name
            }
            if k.string == "default" { transform.defaultValue = json(v) }
        }
        for (k, v) in m {
            switch k.string {
            case "field": if let p = path(v) { return .field(p, transform) }
            case "value": return .constant(json(v) ?? .null)
            case "template": if let t = template(v) { return .template(t, transform) }
            case "reference":
                if let e = string(v) {
                    if context.endpoints[e] == nil { error(v, "unknown endpoint '\(e)' in 'reference'") }
                    return .reference(e, transform)
                }
            case "attribute": if let a = string(v) { return .attribute(a, transform) }
            case "counter": if let c = string(v) { return .counter(c) }
            default: continue
            }
        }
        return .constant(.null)
    }

    /// Parses `${...}` placeholders: a JSONPath (`${$.a.b}`), a dotted field name (`${a.b}`),
    /// `${ref:endpoint}` or `${meta:name}`. `$${` is a literal `${`.
    mutating func template(_ y: Y) -> Template? {
        guard let text = string(y) else { return nil }
        var parts: [Template.Part] = []
        var literal = ""
        var rest = Substring(text)
        while let start = rest.range(of: "${") {
            if start.lowerBound > rest.startIndex, rest[rest.index(before: start.lowerBound)] == "$" {
                literal += rest[..<rest.index(before: start.lowerBound)] + "${"
                rest = rest[start.upperBound...]
                continue
            }
            literal += rest[..<start.lowerBound]
            guard let end = rest[start.upperBound...].firstIndex(of: "}") else {
                error(y, "template \(text.debugDescription): '${' without a closing '}'")
                return nil
            }
            let inner = String(rest[start.upperBound..<end]).trimmingCharacters(in: .whitespaces)
            if !literal.isEmpty {
                parts.append(.literal(literal))
                literal = ""
            }
            if inner.hasPrefix("ref:") {
                parts.append(.reference(String(inner.dropFirst(4))))
            } else if inner.hasPrefix("attr:") {
                parts.append(.attribute(String(inner.dropFirst(5))))
            } else if inner.hasPrefix("counter:") {
                parts.append(.counter(String(inner.dropFirst(8))))
            } else if inner.hasPrefix("meta:") {
                let key = String(inner.dropFirst(5))
                guard Self.metaKeys.contains(key) else {
                    error(y, "template \(text.debugDescription): unknown '${meta:\(key)}' (known: \(Self.metaKeys.sorted().joined(separator: ", ")))")
                    return nil
                }
                parts.append(.meta(key))
            } else {
                let source = inner.hasPrefix("$") ? inner : "$." + inner
                do {
                    parts.append(.field(try JSONPath(source)))
                } catch {
                    self.error(y, "template \(text.debugDescription): \(error.message) in '${\(inner)}'")
                    return nil
                }
            }
            rest = rest[rest.index(after: end)...]
        }
        literal += rest
        if !literal.isEmpty { parts.append(.literal(literal)) }
        return Template(parts: parts, source: text)
    }

    static let metaKeys: Set<String> = [
        "endpoint", "message_id", "type", "who", "ticket_id", "conversation", "timer",
        "acked_type", "acked_rule", "acked_target", "acked_message_id",
    ]

    // MARK: - Conditions

    mutating func conditions(_ y: Y, context: inout MappingContext) -> [Condition] {
        switch y.node {
        case .sequence: return (sequence(y, "when") ?? []).compactMap { condition($0, context: &context) }
        default: return condition(y, context: &context).map { [$0] } ?? []
        }
    }

    static let operatorKeys = ["equals", "in", "regex", "exists", "lt", "lte", "gt", "gte"]

    mutating func condition(_ y: Y, context: inout MappingContext) -> Condition? {
        guard let m = mapping(y, "a condition") else { return nil }
        let keys = m.map(\.0.string)
        if keys == ["all"] { return .all(conditions(m[0].1, context: &context)) }
        if keys == ["any"] { return .any(conditions(m[0].1, context: &context)) }
        if keys == ["not"] {
            return condition(m[0].1, context: &context).map { .not($0) }
        }
        var subject: Subject?
        var op: Operator?
        var ignoreCase = false
        var negate = false
        var opNode: (Y, Y)?
        for (k, v) in m where k.string == "ignore_case" { ignoreCase = bool(v) ?? false }
        for (k, v) in m {
            switch k.string {
            case "field": subject = path(v).map { .field($0) }
            case "reference":
                if let e = string(v) {
                    if context.endpoints[e] == nil { error(v, "unknown endpoint '\(e)' in condition 'reference'") }
                    subject = .reference(e)
                }
            case "attribute": subject = string(v).map { .attribute($0) }
            case "counter": subject = string(v).map { .counter($0) }
            case "meta":
                if let key = string(v) {
                    if !Self.metaKeys.contains(key) { error(v, "unknown meta '\(key)' (known: \(Self.metaKeys.sorted().joined(separator: ", ")))") }
                    subject = .meta(key)
                }
            case "ignore_case": continue
            case "negate": negate = bool(v) ?? false
            case let key where Self.operatorKeys.contains(key):
                if let (previous, _) = opNode {
                    error(k, "a condition takes one operator; it has '\(previous.string)' and '\(key)'")
                }
                opNode = (k, v)
            default:
                unknownKey(k, in: "condition", allowed: "field, reference, attribute, counter, meta, equals, in, regex, exists, lt, lte, gt, gte, ignore_case, negate; or all, any, not")
            }
        }
        if let (k, v) = opNode {
            switch k.string {
            case "equals": op = json(v).map { .equals($0, ignoreCase: ignoreCase) }
            case "in":
                let items = (sequence(v, "'in'") ?? []).compactMap { json($0) }
                op = .oneOf(items, ignoreCase: ignoreCase)
            case "regex":
                if let pattern = string(v) {
                    do {
                        let regex = try NSRegularExpression(pattern: pattern, options: ignoreCase ? [.caseInsensitive] : [])
                        op = .regex(NSRegularExpressionBox(regex: regex, pattern: pattern))
                    } catch {
                        self.error(v, "invalid regex \(pattern.debugDescription): \(error.localizedDescription)")
                    }
                }
            case "exists": op = bool(v).map { .exists($0) }
            default:
                if let n = double(v), let c = NumericComparison(rawValue: k.string) { op = .compare(c, n) }
            }
        } else {
            error(y, "a condition needs an operator: one of \(Self.operatorKeys.joined(separator: ", "))")
        }
        if subject == nil && !m.contains(where: { ["field", "reference", "attribute", "counter", "meta"].contains($0.0.string) }) {
            error(y, "a condition needs a subject: field (a JSONPath), reference (an endpoint), attribute, counter or meta")
        }
        guard let subject, let op else { return nil }
        return negate ? .not(.test(subject, op)) : .test(subject, op)
    }
}
